# install.cmake: what `cmake --install` puts where (GNUInstallDirs; a DESTDIR
# staged install and --prefix both work). The same rules make the .deb
# (cmake/package.cmake).
#
#   bin/tanuki-svc                       the program
#   lib/libtsvc.so.0 (+ .so, .a)          the library: shared with a SONAME, static
#   include/tsvc.h                       its API
#   lib/pkgconfig/tsvc.pc                for `pkg-config --cflags --libs tsvc`
#   share/man/man1/tanuki-svc.1.gz       the man page
#   share/bash-completion/completions/tanuki-svc
#   lib/systemd/system/tanuki-svc@.service   a monitor per config path
#   lib/systemd/user/tanuki-svc@.service     the same for a user's manager
#   share/doc/tanuki-svc/                README.md, examples/
#
# Files that name installed paths (tsvc.pc, the units) are written at install
# time, from the prefix of that install: `cmake --install b --prefix /opt/x`
# gives units that run /opt/x/bin/tanuki-svc.

set(TSVC_SYSTEMD_SYSTEM_UNIT_DIR "lib/systemd/system" CACHE STRING
    "Where the system unit goes (relative: under the prefix)")
set(TSVC_SYSTEMD_USER_UNIT_DIR "lib/systemd/user" CACHE STRING
    "Where the user unit goes (relative: under the prefix)")
set(TSVC_BASH_COMPLETION_DIR "${CMAKE_INSTALL_DATAROOTDIR}/bash-completion/completions"
    CACHE STRING "Where the bash completion goes (relative: under the prefix)")

install(TARGETS tanuki-svc RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(TARGETS tsvc_shared LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(TARGETS tsvc ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(FILES include/tsvc.h DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})

# The man page, compressed as Debian ships them (man reads both).
find_program(TSVC_GZIP gzip)
if(TSVC_GZIP)
  add_custom_command(OUTPUT ${CMAKE_CURRENT_BINARY_DIR}/tanuki-svc.1.gz
    COMMAND ${TSVC_GZIP} -9nc ${CMAKE_CURRENT_SOURCE_DIR}/docs/tanuki-svc.1
            > ${CMAKE_CURRENT_BINARY_DIR}/tanuki-svc.1.gz
    DEPENDS docs/tanuki-svc.1 VERBATIM)
  add_custom_target(tsvc_man ALL DEPENDS ${CMAKE_CURRENT_BINARY_DIR}/tanuki-svc.1.gz)
  install(FILES ${CMAKE_CURRENT_BINARY_DIR}/tanuki-svc.1.gz
          DESTINATION ${CMAKE_INSTALL_MANDIR}/man1)
else()
  install(FILES docs/tanuki-svc.1 DESTINATION ${CMAKE_INSTALL_MANDIR}/man1)
endif()

install(FILES dist/bash-completion/tanuki-svc DESTINATION ${TSVC_BASH_COMPLETION_DIR})

# Written at install time (see above), then installed like any file.
set(TSVC_STAGE ${CMAKE_CURRENT_BINARY_DIR}/install-time)
install(CODE "
  set(TSVC_SRC \"${CMAKE_CURRENT_SOURCE_DIR}\")
  set(TSVC_STAGE \"${TSVC_STAGE}\")
  set(TSVC_BINDIR \"${CMAKE_INSTALL_BINDIR}\")
  set(TSVC_LIBDIR \"${CMAKE_INSTALL_LIBDIR}\")
  set(TSVC_INCLUDEDIR \"${CMAKE_INSTALL_INCLUDEDIR}\")
  set(TSVC_MANDIR \"${CMAKE_INSTALL_MANDIR}\")
  set(TSVC_VERSION \"${PROJECT_VERSION}\")
  set(TSVC_PC_REQUIRES \"${TSVC_PC_REQUIRES}\")
  include(\"${CMAKE_CURRENT_SOURCE_DIR}/cmake/install-time.cmake\")
")
install(FILES ${TSVC_STAGE}/tsvc.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
install(FILES ${TSVC_STAGE}/system/tanuki-svc@.service
        DESTINATION ${TSVC_SYSTEMD_SYSTEM_UNIT_DIR})
install(FILES ${TSVC_STAGE}/user/tanuki-svc@.service
        DESTINATION ${TSVC_SYSTEMD_USER_UNIT_DIR})

install(FILES README.md DESTINATION ${CMAKE_INSTALL_DOCDIR})
file(GLOB TSVC_EXAMPLES CONFIGURE_DEPENDS examples/*.c examples/*.yaml)
install(FILES ${TSVC_EXAMPLES} DESTINATION ${CMAKE_INSTALL_DOCDIR}/examples)
