# Fails when a folder includes a header of a folder it does not link (an upward or sideways include).
#   cmake -DSOURCE_DIR=<repo> -DLAYERS_FILE=<build>/divprune_layers.cmake -P cmake/check_layering.cmake
# LAYERS_FILE (written by the root CMakeLists.txt from the target graph) sets
#   DIVPRUNE_LAYERS                    the folders, lowest first
#   DIVPRUNE_LAYER_DIR_<folder>        its directory relative to SOURCE_DIR
#   DIVPRUNE_LAYER_BELOW_<folder>      the folders its target links, directly or not: the ones it may include
# A file may include headers of its own folder and of the folders below it; includes of anything else
# ("tests/...", system headers) are not checked.
cmake_minimum_required(VERSION 3.25)
include(${LAYERS_FILE})

set(violations "")
set(checked 0)
foreach(folder IN LISTS DIVPRUNE_LAYERS)
  set(dir ${SOURCE_DIR}/${DIVPRUNE_LAYER_DIR_${folder}})
  file(GLOB_RECURSE files ${dir}/*.hpp ${dir}/*.cpp ${dir}/*.h ${dir}/*.cu ${dir}/*.cuh)
  foreach(file IN LISTS files)
    math(EXPR checked "${checked} + 1")
    file(STRINGS ${file} includes REGEX "^[ \t]*#[ \t]*include[ \t]*\"[^/\"]+/")
    foreach(line IN LISTS includes)
      string(REGEX MATCH "\"(([^/\"]+)/[^\"]*)\"" _ "${line}")
      set(header ${CMAKE_MATCH_1})
      set(top ${CMAKE_MATCH_2})
      if(top STREQUAL folder OR NOT top IN_LIST DIVPRUNE_LAYERS OR top IN_LIST DIVPRUNE_LAYER_BELOW_${folder})
        continue()
      endif()
      file(RELATIVE_PATH rel ${SOURCE_DIR} ${file})
      string(APPEND violations "  ${rel} includes \"${header}\": ${folder} does not link ${top}\n")
    endforeach()
  endforeach()
endforeach()

if(violations)
  list(JOIN DIVPRUNE_LAYERS " < " order)
  message(FATAL_ERROR "divprune layering: includes of folders the including target does not link "
                      "(layers: ${order}; see the root CMakeLists.txt)\n${violations}")
endif()
message(STATUS "divprune layering: ${checked} files, every include within its folder or below it")
