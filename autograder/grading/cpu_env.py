"""How torch runs well on a shared CPU: the environment of every process that trains or evaluates
a model (graded kernels, the evaluator, the speed benchmark). A module without imports, so that
a process that only needs this pays for nothing else.

- OpenMP threads that spin while waiting make every small kernel wait for a descheduled sibling.
- glibc hands freed blocks over 128 KiB back to the OS and raises that bound only after a free,
  so each batch of a large-batch loop faults its activation buffers in again (a LeNet-5 at batch
  256 ran slower than at batch 128). Keeping blocks up to 32 MiB on the heap and never trimming it
  costs no more than the peak the loop already reached.
"""

TORCH_CPU_ENV = {"OMP_WAIT_POLICY": "PASSIVE",
                 "MALLOC_MMAP_THRESHOLD_": str(32 * 2**20), "MALLOC_TRIM_THRESHOLD_": str(2**40)}

# A notebook's share of its GPU's memory when K notebooks share one GPU (`grade --per-gpu K`):
# the executor puts it in the kernel's environment, `student.select_device` applies it.
GPU_SHARE_ENV = "AUTOGRADER_GPU_MEMORY_FRACTION"
