"""Child process: execute one notebook with papermill. Run as
`python -m autograder.grading.run_notebook IN OUT PARAMS_JSON CELL_TIMEOUT`.

It runs in its own process (papermill's cwd changes the whole process) and usually inside the
sandbox. Cell errors are expected and stay in the output notebook (nbgrader semantics: every
cell runs, a failing test scores zero); only a failure of the run itself exits non-zero, with
one JSON line on stderr that the parent reads.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

EXIT_OK, EXIT_TIMEOUT, EXIT_DEAD_KERNEL, EXIT_OTHER = 0, 3, 4, 5


def main(argv: list[str]) -> int:
    import papermill
    from nbclient.exceptions import CellTimeoutError, DeadKernelError
    from papermill.exceptions import PapermillExecutionError

    source, output, params_file, cell_timeout = argv
    out = Path(output)
    try:
        papermill.execute_notebook(
            source, output, parameters=json.loads(Path(params_file).read_text()),
            kernel_name="python3", language="python", cwd=str(out.parent),
            execution_timeout=float(cell_timeout), allow_errors=True,
            progress_bar=False, log_output=False, request_save_on_cell_execute=True)
    except PapermillExecutionError:
        return EXIT_OK  # errors are recorded in the cells
    except CellTimeoutError as exc:
        print(json.dumps({"error": "CellTimeoutError", "message": str(exc)[:500]}), file=sys.stderr)
        return EXIT_TIMEOUT
    except DeadKernelError as exc:
        print(json.dumps({"error": "DeadKernelError", "message": str(exc)[:500]}), file=sys.stderr)
        return EXIT_DEAD_KERNEL
    except Exception as exc:  # the child reports; the parent decides
        print(json.dumps({"error": type(exc).__name__, "message": str(exc)[:500]}), file=sys.stderr)
        return EXIT_OTHER
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
