"""Offline stand-in for the get-pip bootstrap script that ansible-test downloads.

ansible-test fetches get-pip.py from a host that is not reachable here, then runs it inside each
fresh sanity virtual environment with pip's install arguments. This script does the same job from
what the environment already has: pip from the standard library's ensurepip, then an ordinary
`pip install` of the requested packages from the package index.
"""
import subprocess
import sys

BOOTSTRAP_ONLY = ("--no-setuptools", "--no-wheel")

subprocess.check_call([sys.executable, "-m", "ensurepip", "--default-pip"], stdout=subprocess.DEVNULL)
subprocess.check_call(
    [sys.executable, "-m", "pip", "install", "--quiet"] + [a for a in sys.argv[1:] if a not in BOOTSTRAP_ONLY]
)
