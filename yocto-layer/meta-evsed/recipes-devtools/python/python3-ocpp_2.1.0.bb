SUMMARY = "Open Charge Point Protocol (OCPP-J) for Python"
DESCRIPTION = "Routing, validation against the official JSON schemas and message classes for \
               OCPP 1.6, 2.0.1 and 2.1 over websockets; evsed's OCPP 1.6J adapter is built on \
               it."
HOMEPAGE = "https://github.com/mobilityhouse/ocpp"
BUGTRACKER = "https://github.com/mobilityhouse/ocpp/issues"
SECTION = "devel/python"
CVE_PRODUCT = "ocpp"
LICENSE = "MIT"
LIC_FILES_CHKSUM = "file://LICENSE;md5=357da596bd4bc9004894e2feaaa1e975"

SRC_URI[sha256sum] = "d29bfafb7161f75a78314f5cfd1b82fdf155082cd0f4de48c4dc8e5741422cf0"

inherit pypi python_poetry_core

# The sdist asks for poetry-core >= 2.0; scarthgap ships 1.9, which builds this
# [tool.poetry] project to the same wheel (the same 412 files). Wrynose has 2.x and checks.
PEP517_BUILD_OPTS += "${@bb.utils.contains('LAYERSERIES_CORENAMES', 'scarthgap', '--skip-dependency-check', '', d)}"

# ocpp 2.1.0 declares jsonschema >= 4.23 (scarthgap's 4.21 is replaced by this layer's 4.23).
RDEPENDS:${PN} += "\
    python3-asyncio \
    python3-core \
    python3-json \
    python3-jsonschema \
    python3-logging \
    python3-netclient \
    python3-numbers \
"
