"""tokd_build — the Python module's build backend (PEP 517), standard library only.

    python3 -m pip install ./python          # any CPython >= 3.9 with pip; no PyPI, no wheel
    python3 python/tokd_build.py --inplace   # python/tokd/_native*.so, for the tests

Why not setuptools: pip's isolated build would have to fetch setuptools and wheel from PyPI,
which many machines cannot reach, and `--no-build-isolation` then needs the `wheel`
package in the interpreter (`invalid command 'bdist_wheel'` on a pyenv build without it).
The module is one C file linked against libtokd.a, so building it needs a C compiler,
the interpreter's own headers and the packages `make` installs — nothing from an index. A
missing piece is named in one message.

The extension is compiled with the interpreter's compiler (sysconfig's CC) against the
static libtokd.a that the repository's Makefile builds, so the module needs no libtokd.so at
run time; the wheel is written with zipfile (PEP 427: WHEEL, METADATA, RECORD).
"""
import base64
import hashlib
import os
import shlex
import shutil
import subprocess
import sys
import sysconfig
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
NAME, VERSION = "tokd", "0.1.0"
SUMMARY = "Exact BPE tokenizers in C, with tiktoken's and Hugging Face tokenizers' interfaces"
PACKAGE_FILES = ["__init__.py", "__init__.pyi", "py.typed"]


class BuildError(SystemExit):
    """A missing build dependency or a failed step, said in one line."""

    def __init__(self, message):
        super().__init__("tokd: " + message)


def _run(cmd, what, **kw):
    try:
        subprocess.check_call(cmd, **kw)
    except FileNotFoundError:
        raise BuildError(f"{cmd[0]} is not installed; it is needed to {what}") from None
    except subprocess.CalledProcessError as e:
        raise BuildError(f"{what} failed (exit {e.returncode}): {' '.join(cmd)}") from None


def _extension_name():
    return "_native" + (sysconfig.get_config_var("EXT_SUFFIX") or ".so")


def build_extension(out_dir):
    """Builds libtokd.a (make) and the extension into out_dir; returns the file's path."""
    include = sysconfig.get_paths()["include"]
    if not os.path.exists(os.path.join(include, "Python.h")):
        raise BuildError(f"Python.h is not in {include}: install this Python's development headers "
                         "(Debian: apt-get install python3-dev)")
    # the plain library whatever make this runs under (a sanitizer build's flags would
    # otherwise reach the sub-make through MAKEFLAGS); make installs the Debian packages
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    _run(["make", "-C", ROOT, "--no-print-directory", "SANITIZER=", "build/libtokd.a"], "build libtokd.a", env=env)
    try:
        libs = subprocess.check_output(["pkg-config", "--libs", "libpcre2-8", "libcjson", "libutf8proc"],
                                       text=True).split()
    except (OSError, subprocess.CalledProcessError):
        raise BuildError("pkg-config cannot find libpcre2-8, libcjson and libutf8proc: run `make` in the "
                         "repository first (it installs them: tools/deps.sh build)") from None
    cc = shlex.split(os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc")
    out = os.path.join(out_dir, _extension_name())
    _run([*cc, "-shared", "-fPIC", "-O2", "-g", "-std=c11", "-Wall", "-Wextra",
          "-I" + os.path.join(ROOT, "include"), "-I" + include,
          os.path.join(HERE, "src", "_native.c"), os.path.join(ROOT, "build", "libtokd.a"),
          *libs, "-lpthread", "-lm", "-o", out], "compile the extension")
    return out


def _tag():
    py = f"cp{sys.version_info.major}{sys.version_info.minor}"
    abi = py + ("t" if sysconfig.get_config_var("Py_GIL_DISABLED") else "")
    plat = sysconfig.get_platform().replace("-", "_").replace(".", "_")
    return f"{py}-{abi}-{plat}"


def _record_line(arcname, data):
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{arcname},sha256={digest},{len(data)}"


# PEP 517 hooks

def get_requires_for_build_wheel(config_settings=None):
    return []


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    tmp = os.path.join(ROOT, "build", "python-wheel")
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    ext = build_extension(tmp)
    tag = _tag()
    dist_info = f"{NAME}-{VERSION}.dist-info"
    files = [(f"{NAME}/{f}", open(os.path.join(HERE, NAME, f), "rb").read()) for f in PACKAGE_FILES]
    files.append((f"{NAME}/{os.path.basename(ext)}", open(ext, "rb").read()))
    files.append((f"{dist_info}/METADATA", (f"Metadata-Version: 2.1\nName: {NAME}\nVersion: {VERSION}\n"
                                            f"Summary: {SUMMARY}\nRequires-Python: >=3.9\n").encode()))
    files.append((f"{dist_info}/WHEEL", (f"Wheel-Version: 1.0\nGenerator: tokd_build\nRoot-Is-Purelib: false\n"
                                         f"Tag: {tag}\n").encode()))
    files.append((f"{dist_info}/top_level.txt", f"{NAME}\n".encode()))
    record = "\n".join([_record_line(a, d) for a, d in files] + [f"{dist_info}/RECORD,,", ""])
    name = f"{NAME}-{VERSION}-{tag}.whl"
    with zipfile.ZipFile(os.path.join(wheel_directory, name), "w", zipfile.ZIP_DEFLATED) as z:
        for arcname, data in files:
            z.writestr(arcname, data)
        z.writestr(f"{dist_info}/RECORD", record)
    return name


if __name__ == "__main__":
    if sys.argv[1:] != ["--inplace"]:
        sys.exit("usage: tokd_build.py --inplace")
    print(build_extension(os.path.join(HERE, NAME)))
