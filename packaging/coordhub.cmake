# Installation and the Debian package.
#
#   cmake --install BUILD [--prefix /usr]    the hub, the web demo, the unit,
#                                            the environment file
#   (cd BUILD && cpack)                      BUILD/coordhub_<version>-1_<arch>.deb
#
# Layout, for the prefix /usr (the package's; `cmake --install` defaults to
# /usr/local, and the same layout lands under it):
#   /usr/bin/coordhub
#   /usr/share/coordhub/web-demo/            the web demo (--web-root)
#   /usr/share/doc/coordhub/                 README.md, coordhub.env.example
#   /etc/coordhub/coordhub.env               settings (a dpkg conffile, 0600)
#   /lib/systemd/system/coordhub.service     the unit (User=coordhub)
# The files whose place depends on the prefix (/etc, the unit directory) and
# whose text names other files (the unit's ExecStart=, EnvironmentFile=) are
# written at install time by install-system.cmake, from the prefix in use
# then, so `cmake --install --prefix` and cpack get consistent files.
include(GNUInstallDirs)

install(TARGETS coordhub RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(DIRECTORY ${PROJECT_SOURCE_DIR}/web-demo/
        DESTINATION ${CMAKE_INSTALL_DATADIR}/coordhub/web-demo)
install(FILES ${PROJECT_SOURCE_DIR}/README.md DESTINATION ${CMAKE_INSTALL_DOCDIR})

# Where systemd looks for packaged units when the prefix is /usr: Debian 12
# says /lib/systemd/system (systemd.pc); other prefixes get PREFIX/lib/systemd/system.
pkg_get_variable(COORDHUB_SYSTEMD_PC_UNITDIR systemd systemdsystemunitdir)
if(NOT COORDHUB_SYSTEMD_PC_UNITDIR)
  set(COORDHUB_SYSTEMD_PC_UNITDIR /lib/systemd/system)
endif()
set(COORDHUB_SYSTEMD_UNIT_DIR "${COORDHUB_SYSTEMD_PC_UNITDIR}" CACHE PATH
    "Directory of the systemd unit when the install prefix is /usr")

install(CODE "
set(COORDHUB_PKG_SRC \"${CMAKE_CURRENT_LIST_DIR}\")
set(COORDHUB_PKG_TMP \"${CMAKE_BINARY_DIR}/packaging\")
set(COORDHUB_PKG_BINDIR \"${CMAKE_INSTALL_BINDIR}\")
set(COORDHUB_PKG_DATADIR \"${CMAKE_INSTALL_DATADIR}\")
set(COORDHUB_PKG_DOCDIR \"${CMAKE_INSTALL_DOCDIR}\")
set(COORDHUB_PKG_UNITDIR_USR \"${COORDHUB_SYSTEMD_UNIT_DIR}\")
")
install(SCRIPT ${CMAKE_CURRENT_LIST_DIR}/install-system.cmake)

# --- CPack: the Debian package ---------------------------------------------
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME coordhub)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_VENDOR "coordhub")
set(COORDHUB_PACKAGE_MAINTAINER "coordhub maintainers <maintainers@coordhub.invalid>"
    CACHE STRING "Maintainer field of the Debian package")
set(CPACK_PACKAGE_CONTACT "${COORDHUB_PACKAGE_MAINTAINER}")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY
    "real-time coordination hub: Redis pub/sub to WebSocket and Socket.IO rooms")
# The extended description (CPack puts the summary above it and indents it).
set(CPACK_DEBIAN_PACKAGE_DESCRIPTION "One libuv process between Redis and its clients: browsers receive their
user room's events over WebSockets or Socket.IO v4, operators watch bot
rooms, backend services take distributed locks with fencing numbers,
reserve assets with real TTLs and read a configuration cache kept fresh by
Redis client tracking.

The service is installed disabled: set the JWT secret and the Redis URL in
/etc/coordhub/coordhub.env, then run systemctl enable --now coordhub.")
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_RELEASE 1)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
# Depends: every shared library the binary links, from dpkg-shlibdeps
# (dpkg-dev). libwebsockets' libuv support is a plugin it dlopen()s at run
# time, which no linker record shows: named here. adduser: postinst.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "adduser, libwebsockets-evlib-uv")
set(CPACK_DEBIAN_PACKAGE_SUGGESTS "redis-server")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    ${CMAKE_CURRENT_LIST_DIR}/debian/conffiles
    ${CMAKE_CURRENT_LIST_DIR}/debian/postinst
    ${CMAKE_CURRENT_LIST_DIR}/debian/prerm
    ${CMAKE_CURRENT_LIST_DIR}/debian/postrm)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
set(CPACK_STRIP_FILES ON)
# Install into a staging DESTDIR with the prefix /usr, whatever prefix the
# build tree was configured with: the package's layout is always Debian's.
set(CPACK_SET_DESTDIR ON)
set(CPACK_INSTALL_PREFIX /usr)
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
# cpack --config CPackSourceConfig.cmake: the tracked tree, not builds or logs.
set(CPACK_SOURCE_IGNORE_FILES "/\\\\.git/" "/build[^/]*/" "/node_modules/" "/fuzz/crashes/" "\\\\.log$")
include(CPack)
