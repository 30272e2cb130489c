"""Run ``python -m MODULE ARGS...`` under cProfile timed by CPU (not wall)
time, the stats written to OUT when it exits (SIGTERM included: the flow
finishes its batch and returns). Usage: python bench/profiled.py OUT MODULE ARGS...
(bench_perfile.py --profile)."""
import cProfile
import runpy
import sys
import time


def main() -> None:
    out, module, *args = sys.argv[1:]
    sys.argv = [module, *args]
    prof = cProfile.Profile(time.process_time)
    try:
        prof.runcall(runpy.run_module, module, run_name="__main__", alter_sys=True)
    except SystemExit:
        pass
    finally:
        prof.dump_stats(out)


if __name__ == "__main__":
    main()
