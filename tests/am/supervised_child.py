"""A stand-in for tarn-am under the supervisor: counts its starts, leaves its reason, exits.

usage: supervised_child.py STARTS_FILE EXIT_CODE REASON"""
import os
import sys

starts, code, reason = sys.argv[1], int(sys.argv[2]), sys.argv[3]
with open(starts, "a") as handle:
    handle.write("x")
with open(os.environ["TARN_AM_EXIT_REASON_FILE"], "w") as handle:
    handle.write(reason)
sys.exit(code)
