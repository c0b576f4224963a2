# install-time.cmake: included by cmake_install.cmake (see install.cmake) to
# write the files that name installed paths, from this install's prefix.
# In: CMAKE_INSTALL_PREFIX (this install's), TSVC_SRC, TSVC_STAGE, and the
# GNUInstallDirs paths TSVC_BINDIR, TSVC_LIBDIR, TSVC_INCLUDEDIR, TSVC_MANDIR.
set(prefix "${CMAKE_INSTALL_PREFIX}")
foreach(d BINDIR LIBDIR INCLUDEDIR MANDIR)
  if(IS_ABSOLUTE "${TSVC_${d}}")
    set(full_${d} "${TSVC_${d}}")
    set(pc_${d} "${TSVC_${d}}")
  else()
    set(full_${d} "${prefix}/${TSVC_${d}}")
    set(pc_${d} "\${prefix}/${TSVC_${d}}")
  endif()
endforeach()
configure_file("${TSVC_SRC}/dist/tsvc.pc.in" "${TSVC_STAGE}/tsvc.pc" @ONLY)
configure_file("${TSVC_SRC}/dist/systemd/system/tanuki-svc@.service.in"
               "${TSVC_STAGE}/system/tanuki-svc@.service" @ONLY)
configure_file("${TSVC_SRC}/dist/systemd/user/tanuki-svc@.service.in"
               "${TSVC_STAGE}/user/tanuki-svc@.service" @ONLY)
