"""Build of the C core, shmrt._core (sources in shmrt/_core/).

Environment switches (msgspec-style):
  SHMRT_DEBUG=1     -O0 -g, asserts on
  SHMRT_SANITIZE=1  AddressSanitizer + UndefinedBehaviorSanitizer (run with
                    LD_PRELOAD=$(gcc -print-file-name=libasan.so))
"""

import os
from glob import glob

from setuptools import Extension, setup

cflags = ["-std=c11", "-Wall", "-Wextra", "-Wno-unused-parameter", "-Wno-missing-field-initializers"]
ldflags: list[str] = []
if os.environ.get("SHMRT_DEBUG"):
    cflags += ["-O0", "-g", "-UNDEBUG"]
else:
    cflags += ["-O2"]
if os.environ.get("SHMRT_SANITIZE"):
    san = ["-fsanitize=address,undefined", "-fno-omit-frame-pointer"]
    cflags += san
    ldflags += san

setup(
    ext_modules=[
        Extension(
            "shmrt._core",
            sources=sorted(glob("shmrt/_core/*.c")),
            depends=sorted(glob("shmrt/_core/*.h")),
            extra_compile_args=cflags,
            extra_link_args=ldflags,
        )
    ]
)
