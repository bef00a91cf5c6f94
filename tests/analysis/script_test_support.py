"""What the Python analysis tests share: assertions that end the test with a message, the skip/fail rule for
missing assets, where the assets are, and running a command. Imported by the test scripts beside it (Python puts
a script's own folder first on sys.path)."""
import os
import subprocess

SKIP = 77  # ctest's SKIP_RETURN_CODE for these tests


class Failure(Exception):
    pass


def expect(condition, message):
    if not condition:
        raise Failure(message)


def skip_or_fail(why):
    """Missing assets or packages: a failure under CI=true, a skip elsewhere."""
    if os.environ.get("CI") == "true":
        print(f"FAIL: CI=true but {why}")
        return 1
    print(f"SKIP: {why}")
    return SKIP


def assets_dir(source):
    return (os.environ.get("DIVPRUNE_ASSETS") or os.environ.get("DIVPRUNE_ASSETS_DEFAULT")
            or os.path.join(source, "..", "shared", "assets"))


def run(cmd, timeout=240):
    """Runs cmd; returns (exit code, stdout, stderr)."""
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    return r.returncode, r.stdout, r.stderr


def tail(text, n=2000):
    return text[-n:]
