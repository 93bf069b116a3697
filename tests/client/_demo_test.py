import os, subprocess, sys
def test_demo(api_url, api_key, hark):
    hark.diagnostics_sleep(0.1); hark.diagnostics_sleep(0, fail=True)
    env = {**os.environ, "HARK_URL": api_url, "HARK_API_KEY": api_key}
    for args in (["tasks","count"],["tasks","list"],["tasks","get", hark.tasks.page().items[0].id],
                 ["health"],["collections","list"],["webhooks","list"],["tasks","list","--json","--limit","1"],
                 ["analyze", "/etc/hostname"], ["analyze", "--help"], ["tasks","retry", hark.tasks.page().items[0].id]):
        p = subprocess.run([sys.executable,"-m","hark_client.cli",*args],env=env,capture_output=True,text=True)
        print("$ hark", " ".join(args), "->", p.returncode); print(p.stdout, p.stderr)
