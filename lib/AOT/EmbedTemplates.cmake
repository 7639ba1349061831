# Writes OUTPUT: every TEMPLATE_DIR/*.in as {"file name", R"(text)"}, so the
# driver library carries its templates and needs no source tree at run time.
file(GLOB templates "${TEMPLATE_DIR}/*.in")
list(SORT templates)
set(out "// Generated from lib/AOT/templates by EmbedTemplates.cmake.\n")
foreach(path ${templates})
  get_filename_component(name "${path}" NAME)
  file(READ "${path}" text)
  string(APPEND out "{\"${name}\", R\"sqa_template(${text})sqa_template\"},\n")
endforeach()
file(WRITE "${OUTPUT}.tmp" "${out}")
# Touch the .inc only when it changes.
file(COPY_FILE "${OUTPUT}.tmp" "${OUTPUT}" ONLY_IF_DIFFERENT)
