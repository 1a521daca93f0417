# The CUDA emulator build (IRCONSTYLE_CUDA=EMU, `npm run build:emu`; included by the top-level CMakeLists.txt after
# the irconstyle target exists). Tests only, never shipped. Every kernel file is rewritten for the host compiler
# (scripts/cuda-emu-source.mjs) and compiled as C++ against native/emu/cuda_runtime.h; cuBLAS, cuBLASLt and cuDNN are
# CPU stand-ins built beside the addon (emu-libs/).
find_program(IRC_NODE NAMES node REQUIRED)
set(IRC_EMU_DIR ${CMAKE_BINARY_DIR}/emu-src)
set(IRC_SRC ${CMAKE_SOURCE_DIR}/native/src)
file(GLOB IRC_EMU_INPUTS CONFIGURE_DEPENDS
  ${IRC_SRC}/cuda/*.cu ${IRC_SRC}/ops/*.cu ${IRC_SRC}/cuda/*.cuh ${IRC_SRC}/ops/*.cuh)
set(IRC_EMU_SOURCES "")
set(IRC_EMU_HEADERS "")
foreach(in ${IRC_EMU_INPUTS})
  if(in MATCHES "\\.cuh$")  # a header is rewritten only when it launches kernels; the others are used as they are
    file(READ ${in} text)
    string(FIND "${text}" "<<<" launches)
    if(launches EQUAL -1)
      continue()
    endif()
  endif()
  get_filename_component(sub ${in} DIRECTORY)
  get_filename_component(sub ${sub} NAME)
  get_filename_component(name ${in} NAME)
  string(REGEX REPLACE "\\.cu$" ".cpp" name ${name})
  set(out ${IRC_EMU_DIR}/${sub}/${name})
  add_custom_command(OUTPUT ${out}
    COMMAND ${IRC_NODE} ${CMAKE_SOURCE_DIR}/scripts/cuda-emu-source.mjs ${in} ${out}
    DEPENDS ${in} ${CMAKE_SOURCE_DIR}/scripts/cuda-emu-source.mjs VERBATIM)
  if(name MATCHES "\\.cpp$")
    list(APPEND IRC_EMU_SOURCES ${out})
    set_source_files_properties(${out} PROPERTIES INCLUDE_DIRECTORIES
      "${CMAKE_SOURCE_DIR}/native/emu;${IRC_EMU_DIR}/${sub};${IRC_SRC}/${sub};${IRC_SRC}/cuda;${IRC_SRC}/ops"
      COMPILE_OPTIONS "-D__CUDACC__;-Wno-unknown-pragmas;-Wno-maybe-uninitialized")
  else()
    list(APPEND IRC_EMU_HEADERS ${out})
  endif()
endforeach()
add_custom_target(irc_emu_headers DEPENDS ${IRC_EMU_HEADERS})
set(IRC_EMU_LIBS ${CMAKE_BINARY_DIR}/emu-libs)
foreach(lib cublas:libcublas.so.13 cublaslt:libcublasLt.so.13 cudnn:libcudnn.so.9)
  string(REPLACE ":" ";" parts ${lib})
  list(GET parts 0 src)
  list(GET parts 1 soname)
  add_library(irc_stand_in_${src} SHARED ${CMAKE_SOURCE_DIR}/native/emu/stand_in/${src}.cpp)
  target_include_directories(irc_stand_in_${src} PRIVATE ${CMAKE_SOURCE_DIR}/native/src/cuda)
  set_target_properties(irc_stand_in_${src} PROPERTIES PREFIX "" SUFFIX "" OUTPUT_NAME ${soname}
    NO_SONAME ON LIBRARY_OUTPUT_DIRECTORY ${IRC_EMU_LIBS})
  target_link_options(irc_stand_in_${src} PRIVATE -Wl,-soname,${soname})
  add_dependencies(irconstyle irc_stand_in_${src})
endforeach()
# the emulator's own check and the stand-ins' (scripts/check-emu.mjs runs both)
add_custom_command(OUTPUT ${IRC_EMU_DIR}/test/selftest.cpp
  COMMAND ${IRC_NODE} ${CMAKE_SOURCE_DIR}/scripts/cuda-emu-source.mjs ${CMAKE_SOURCE_DIR}/native/emu/test/selftest.cu
    ${IRC_EMU_DIR}/test/selftest.cpp
  DEPENDS ${CMAKE_SOURCE_DIR}/native/emu/test/selftest.cu ${CMAKE_SOURCE_DIR}/scripts/cuda-emu-source.mjs VERBATIM)
set(IRC_EMU_RUNTIME ${CMAKE_SOURCE_DIR}/native/emu/emu.cpp ${CMAKE_SOURCE_DIR}/native/emu/emu_memory.cpp)
add_executable(emu-selftest ${IRC_EMU_DIR}/test/selftest.cpp ${IRC_EMU_RUNTIME})
target_include_directories(emu-selftest PRIVATE ${CMAKE_SOURCE_DIR}/native/emu)
target_compile_options(emu-selftest PRIVATE -D__CUDACC__ -DIRC_CUDA_EMU=1 -Wno-unknown-pragmas)
target_link_libraries(emu-selftest PRIVATE pthread)
add_executable(stand-in-selftest ${CMAKE_SOURCE_DIR}/native/emu/stand_in/selftest.cpp)
target_include_directories(stand-in-selftest PRIVATE ${CMAKE_SOURCE_DIR}/native/src/cuda)
target_link_libraries(stand-in-selftest PRIVATE dl)
add_dependencies(irconstyle emu-selftest stand-in-selftest)
target_sources(irconstyle PRIVATE ${IRC_EMU_SOURCES} ${IRC_EMU_RUNTIME})
set_source_files_properties(${IRC_EMU_RUNTIME} PROPERTIES INCLUDE_DIRECTORIES
  "${CMAKE_SOURCE_DIR}/native/emu")
add_dependencies(irconstyle irc_emu_headers)
target_compile_definitions(irconstyle PRIVATE IRC_WITH_CUDA=1 IRC_CUDA_EMU=1 IRC_EMU_LIBS_DIR="${IRC_EMU_LIBS}")
# IRCONSTYLE_EMU_ASAN: the kernels' and the stand-ins' memory accesses checked by AddressSanitizer (heap only: the
# fibers switch stacks); the addon then loads only with the ASan runtime preloaded (scripts/check-emu.mjs --asan)
option(IRCONSTYLE_EMU_ASAN "AddressSanitizer on the emulated kernels" OFF)
if(IRCONSTYLE_EMU_ASAN)
  set(asan -fsanitize=address --param=asan-stack=0 -fno-omit-frame-pointer)
  set_property(SOURCE ${IRC_EMU_SOURCES} ${IRC_EMU_RUNTIME}
    APPEND PROPERTY COMPILE_OPTIONS ${asan})
  foreach(t irc_stand_in_cublas irc_stand_in_cublaslt irc_stand_in_cudnn)
    target_compile_options(${t} PRIVATE ${asan})
    target_link_options(${t} PRIVATE -fsanitize=address)
  endforeach()
  target_link_options(irconstyle PRIVATE -fsanitize=address)
  target_link_options(emu-selftest PRIVATE -fsanitize=address)
endif()
