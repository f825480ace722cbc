"""`torchrun --nproc_per_node N -m negbench.train ARGS` = `negbench finetune ARGS` on N ranks."""
import argparse
import logging
import os
import sys

from negbench.train import command


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m negbench.train", description=command.HELP,
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter, allow_abbrev=False)
    command.add_arguments(parser)
    args = parser.parse_args(argv)
    rank = int(os.environ.get("RANK", "0"))
    logging.basicConfig(level=logging.INFO if rank == 0 else logging.WARNING,
                        format=f"[rank{rank}] %(levelname)s %(name)s: %(message)s")
    from negbench.core.reporting import run_reporting_errors

    try:
        return run_reporting_errors("python -m negbench.train" + (f" [rank{rank}]" if rank else ""),
                                    lambda: command.run(args))
    finally:
        from negbench.train.distributed import cleanup
        cleanup()


if __name__ == "__main__":
    sys.exit(main())
