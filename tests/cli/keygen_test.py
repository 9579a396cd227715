#!/usr/bin/env python3
"""`k2serve keygen`: the key file it writes is mode 0600 and holds a Z85 public/secret pair,
the public key printed is the one in the file, and a second run never overwrites the file.
Usage: keygen_test.py K2SERVE
"""
import os
import stat
import subprocess
import sys
import tempfile


def run(k2serve, *args):
    return subprocess.run([k2serve, "keygen", *args], capture_output=True, text=True, timeout=60)


def main():
    k2serve = sys.argv[1]
    failures = []

    def check(ok, what):
        print(("ok   " if ok else "FAIL ") + what)
        if not ok:
            failures.append(what)

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "cp.key")
        first = run(k2serve, "--output", path)
        check(first.returncode == 0, f"first run exits 0 (stderr: {first.stderr.strip()})")
        check(os.path.exists(path), "the key file exists")
        if not os.path.exists(path):
            return 1
        mode = stat.S_IMODE(os.stat(path).st_mode)
        check(mode == 0o600, f"the key file is mode 0600 (got {oct(mode)})")
        entries = {}
        with open(path, encoding="ascii") as f:
            for line in f:
                line = line.strip()
                if line and not line.startswith("#"):
                    name, _, value = line.partition("=")
                    entries[name] = value
        check(sorted(entries) == ["public", "secret"], f"public= and secret= lines (got {sorted(entries)})")
        check(all(len(v) == 40 for v in entries.values()), "40-character Z85 keys")
        check(path in first.stdout, "the path is printed")
        check(f"public key: {entries.get('public')}" in first.stdout, "the file's public key is printed")
        check(entries.get("secret", "-") not in first.stdout + first.stderr, "the secret key is never printed")

        with open(path, "rb") as f:
            before = f.read()
        second = run(k2serve, "--output", path)
        check(second.returncode != 0, "a second run fails")
        check("refusing to overwrite" in second.stderr, f"and says why (stderr: {second.stderr.strip()})")
        with open(path, "rb") as f:
            check(f.read() == before, "the existing key file is unchanged")

        other = run(k2serve, "-o", os.path.join(tmp, "other.key"))
        check(other.returncode == 0 and other.stdout != first.stdout, "another run makes another key")
        check(run(k2serve, "--bogus").returncode == 2, "an unknown option is a usage error")
    print(f"{'FAILED' if failures else 'passed'}: {len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
