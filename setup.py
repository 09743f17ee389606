"""pip's way to the Python binding: runs this repository's CMake build of the module
(kvactor_python, in build/pip; only the library and the module, no tests) for the interpreter
that runs pip, then packages python/kvactor with it. The CMake build and `cmake --install` are
the tested way; this one builds the same target. KVACTOR_CMAKE_ARGS adds CMake arguments
(e.g. "-DKVACTOR_ENABLE_CUDA=OFF")."""

import os
import pathlib
import shlex
import shutil
import subprocess
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = pathlib.Path(__file__).parent.resolve()


class CMakeModule(Extension):
    def __init__(self):
        super().__init__("kvactor._kvactor", sources=[])


class CMakeBuild(build_ext):
    def build_extension(self, ext):
        build = ROOT / "build" / "pip"
        configure = ["cmake", "-S", str(ROOT), "-B", str(build), "-DCMAKE_BUILD_TYPE=Release",
                     "-DKVACTOR_BUILD_TESTS=OFF", "-DKVACTOR_BUILD_BENCH=OFF",
                     "-DKVACTOR_BUILD_EXAMPLES=OFF", "-DKVACTOR_BUILD_PYTHON=ON",
                     "-DPython3_EXECUTABLE=" + sys.executable]
        if shutil.which("ninja"):
            configure += ["-G", "Ninja"]
        configure += shlex.split(os.environ.get("KVACTOR_CMAKE_ARGS", ""))
        subprocess.run(configure, check=True)
        subprocess.run(["cmake", "--build", str(build), "--target", "kvactor_python", "-j",
                        str(os.cpu_count() or 1)], check=True)
        built = sorted((build / "python" / "kvactor").glob("_kvactor*.so"))
        if not built:
            raise RuntimeError("the CMake build made no _kvactor module in " + str(build))
        target = pathlib.Path(self.get_ext_fullpath(ext.name))
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(built[-1], target)


setup(
    name="kvactor",
    version="0.1.0",
    description="MXNet's KVStore API on kvactor's actor runtime",
    packages=["kvactor"],
    package_dir={"": "python"},
    ext_modules=[CMakeModule()],
    cmdclass={"build_ext": CMakeBuild},
    python_requires=">=3.8",
    install_requires=["numpy"],
    zip_safe=False,
)
