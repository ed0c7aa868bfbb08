"""Stage check_params: validate the whole params.yaml before any other stage does work.

DVC reruns this stage whenever params.yaml changes (it is a file dependency), and every other
stage descends from its stamp, so ``dvc exp run -S decode.fsp=4`` fails here, naming the key,
before any stage runs. The stamp's content does not depend on the params, so a valid change
does not invalidate downstream stages by itself.

``dvc exp run -S key=value`` writes the override into params.yaml before any stage runs and
leaves it there when the run fails, so the next run would fail on it too: the error says so and
how to restore the file.
"""

from __future__ import annotations

import argparse
import sys

from pipeline.atomic import write_text
from pipeline.cli import user_errors
from pipeline.config import ParamsError, load_params

RESTORE_HINT = (
    "note: if this came from `dvc exp run -S`, DVC has already written it into {path}, so every later run "
    "fails on it too: restore the committed file with `git checkout -- {path}` (or correct the key there)"
)


@user_errors()
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--out", required=True, help="stamp file written when params.yaml is valid")
    args = parser.parse_args(argv)
    try:
        load_params(args.params)
    except ParamsError as error:
        print(f"error: {error}\n{RESTORE_HINT.format(path=args.params)}", file=sys.stderr)
        return 2
    write_text("params.yaml matches the schema in pipeline/config/\n", args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
