"""Builds the tokd Python module against libtokd (the static library the repository's
Makefile builds, so the module carries the tokenizers and needs no libtokd.so at run time).

    python3 -m pip install ./python      (or: cd python && python3 setup.py build_ext --inplace)

Needs Debian's python3-dev and the packages `make` installs (tools/deps.sh build).
"""
import os
import subprocess

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
LIB = os.path.join(ROOT, "build", "libtokd.a")


class BuildWithLibtokd(build_ext):
    def run(self):
        # the plain library whatever make this runs under (a sanitizer build's flags would
        # otherwise reach the sub-make through MAKEFLAGS)
        env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
        subprocess.check_call(["make", "-C", ROOT, "--no-print-directory", "SANITIZER=", "build/libtokd.a"], env=env)
        flags = subprocess.check_output(["pkg-config", "--libs", "libpcre2-8", "libcjson", "libutf8proc"], text=True)
        for ext in self.extensions:
            ext.extra_link_args = flags.split() + ["-lpthread", "-lm"]
        super().run()


setup(
    name="tokd",
    version="0.1.0",
    description="Exact BPE tokenizers in C, with tiktoken's and Hugging Face tokenizers' interfaces",
    packages=["tokd"],
    package_data={"tokd": ["py.typed", "*.pyi"]},
    ext_modules=[Extension("tokd._native", sources=[os.path.join("src", "_native.c")],
                           include_dirs=[os.path.join(ROOT, "include"), os.path.join(ROOT, "src", "chat")], extra_objects=[LIB],
                           extra_compile_args=["-std=c11", "-Wall", "-Wextra"])],
    cmdclass={"build_ext": BuildWithLibtokd},
)
