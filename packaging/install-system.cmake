# Runs at install time (cmake --install, cpack), after the binary and the web
# demo: writes the systemd unit and the environment file with the paths of
# the prefix in use now. Variables COORDHUB_PKG_* come from coordhub.cmake.
#
# Prefix /usr (the package's): /etc/coordhub and the distribution's unit
# directory (/lib/systemd/system on Debian 12). Any other prefix P:
# P/etc/coordhub and P/lib/systemd/system (systemd reads
# /usr/local/lib/systemd/system too).
string(REGEX REPLACE "/+$" "" prefix "${CMAKE_INSTALL_PREFIX}")
if(prefix STREQUAL "/usr")
  set(etc_dir /etc/coordhub)
  set(unit_dir "${COORDHUB_PKG_UNITDIR_USR}")
else()
  set(etc_dir "${prefix}/etc/coordhub")
  set(unit_dir "${prefix}/lib/systemd/system")
endif()
set(COORDHUB_BIN "${prefix}/${COORDHUB_PKG_BINDIR}/coordhub")
set(COORDHUB_ENV_FILE "${etc_dir}/coordhub.env")
set(COORDHUB_WEB_ROOT "${prefix}/${COORDHUB_PKG_DATADIR}/coordhub/web-demo")
set(COORDHUB_DOC_DIR "${prefix}/${COORDHUB_PKG_DOCDIR}")

configure_file("${COORDHUB_PKG_SRC}/coordhub.service.in"
               "${COORDHUB_PKG_TMP}/coordhub.service" @ONLY)
configure_file("${COORDHUB_PKG_SRC}/coordhub.env.in"
               "${COORDHUB_PKG_TMP}/coordhub.env" @ONLY)

# file(INSTALL) puts $DESTDIR in front of these absolute paths, as the
# generated rules do.
file(INSTALL "${COORDHUB_PKG_TMP}/coordhub.service" DESTINATION "${unit_dir}"
     FILE_PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
file(INSTALL "${COORDHUB_PKG_TMP}/coordhub.env" DESTINATION "${COORDHUB_DOC_DIR}"
     RENAME coordhub.env.example
     FILE_PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
# The live settings hold the secret: root-only. An existing file is the
# administrator's and is kept (dpkg does the same for the package's conffile).
if(EXISTS "$ENV{DESTDIR}${COORDHUB_ENV_FILE}")
  message(STATUS "Keeping: $ENV{DESTDIR}${COORDHUB_ENV_FILE} (the new one is "
                 "${COORDHUB_DOC_DIR}/coordhub.env.example)")
else()
  file(INSTALL "${COORDHUB_PKG_TMP}/coordhub.env" DESTINATION "${etc_dir}"
       FILE_PERMISSIONS OWNER_READ OWNER_WRITE)
endif()
