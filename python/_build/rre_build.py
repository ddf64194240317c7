"""A minimal PEP 517 build backend (standard library only) for the rre
package: builds a wheel holding python/rre and, when one is found, the
librre shared library next to it, so an installed package finds its own
library first.

The library is taken from RRE_LIBRARY when set, else from ../build of this
source tree; without one the wheel is pure Python and uses the system's
librre (cmake --install)."""

import base64
import hashlib
import os
import re
import sysconfig
import zipfile

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NAME = "rre"


def _version():
    cmake = os.path.join(os.path.dirname(HERE), "CMakeLists.txt")
    try:
        with open(cmake) as f:
            m = re.search(r"project\(\s*[\w-]+\s+VERSION\s+([0-9.]+)", f.read())
            if m:
                return m.group(1)
    except OSError:
        pass
    return "0.0.0"


def _library():
    env = os.environ.get("RRE_LIBRARY")
    if env:
        return env if os.path.exists(env) else None
    path = os.path.join(os.path.dirname(HERE), "build", "librre.so.0")
    return path if os.path.exists(path) else None


def _metadata(version):
    return ("Metadata-Version: 2.1\nName: %s\nVersion: %s\nSummary: Python face of "
            "ringrift-events over librre\nRequires-Python: >=3.9\n" % (NAME, version))


def _record_line(arcname, data):
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return "%s,sha256=%s,%d" % (arcname, digest, len(data))


def get_requires_for_build_wheel(config_settings=None):
    return []


def get_requires_for_build_sdist(config_settings=None):
    return []


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    version = _version()
    lib = _library()
    tag = "py3-none-any"
    if lib is not None:
        tag = "py3-none-" + sysconfig.get_platform().replace("-", "_").replace(".", "_")
    dist = "%s-%s" % (NAME, version)
    wheel_name = "%s-%s.whl" % (dist, tag)
    files = []
    pkg = os.path.join(HERE, NAME)
    for fn in sorted(os.listdir(pkg)):
        if fn.endswith(".py"):
            with open(os.path.join(pkg, fn), "rb") as f:
                files.append(("%s/%s" % (NAME, fn), f.read()))
    if lib is not None:
        with open(lib, "rb") as f:
            files.append(("%s/librre.so.0" % NAME, f.read()))
    info = "%s.dist-info" % dist
    files.append(("%s/METADATA" % info, _metadata(version).encode()))
    files.append(("%s/WHEEL" % info, ("Wheel-Version: 1.0\nGenerator: rre_build\n"
                                       "Root-Is-Purelib: %s\nTag: %s\n"
                                       % ("true" if lib is None else "false", tag)).encode()))
    record = [_record_line(a, d) for a, d in files] + ["%s/RECORD,," % info]
    files.append(("%s/RECORD" % info, ("\n".join(record) + "\n").encode()))
    path = os.path.join(wheel_directory, wheel_name)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for arcname, data in files:
            zi = zipfile.ZipInfo(arcname, date_time=(2020, 1, 1, 0, 0, 0))
            zi.external_attr = (0o755 if arcname.endswith(".so.0") else 0o644) << 16
            z.writestr(zi, data, zipfile.ZIP_DEFLATED)
    return wheel_name
