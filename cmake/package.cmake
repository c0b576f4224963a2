# package.cmake: `cpack -G DEB` makes tanuki-svc_<version>_<arch>.deb from
# the install rules (cmake/install.cmake). Build it with scripts/package.sh,
# which configures a Release build for the prefix /usr (GNUInstallDirs then
# picks Debian's multiarch library directory).
#
# Depends: computed by dpkg-shlibdeps from the binaries (libc6, libuv1,
# libjansson4, libyaml-0-2, libmicrohttpd12), and libcurl4 and libssl3
# (libcrypto) named here: the program loads them on first use
# (src/common/lazylib.h), so they are not in its NEEDED entries.
# Recommends: the runtimes and servers tanuki-svc drives; it runs without
# them (services as local processes need postgresql or redis-server, the
# docker runtime needs a Docker engine).
set(TSVC_PACKAGE_MAINTAINER "tanuki-svc maintainers <tanuki-svc@invalid>" CACHE STRING
    "The Maintainer field of the .deb")

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME tanuki-svc)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_CONTACT "${TSVC_PACKAGE_MAINTAINER}")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "${PROJECT_DESCRIPTION}")
set(CPACK_PACKAGING_INSTALL_PREFIX "${CMAKE_INSTALL_PREFIX}")
set(CPACK_STRIP_FILES ON)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION admin)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "libcurl4 (>= 7.88), libssl3 (>= 3.0)")
# A shlibs file for libtsvc.so.0, and the ldconfig trigger on install and
# removal.
set(CPACK_DEBIAN_PACKAGE_GENERATE_SHLIBS ON)
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS "docker.io, postgresql, redis-server")
# The synopsis is CPACK_PACKAGE_DESCRIPTION_SUMMARY; this is the rest.
set(CPACK_DEBIAN_PACKAGE_DESCRIPTION
    "tanuki-svc starts the shared services of a Tanuki project (Postgres, Redis,
any image) under Docker or as local processes, checks each one with a
native probe, restarts the ones that stop answering (with backoff), and
shows their health through a CLI, an HTTP API, Prometheus metrics and a C
library (libtsvc, pkg-config tsvc). Systemd units run a monitor per config.")
include(CPack)
