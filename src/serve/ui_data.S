/*
 * ui_data.S — the token playground (src/ui/), built into the binary so that the page works
 * with no files beside it and no network. The list must match the table in ui.c.
 */
        .section .rodata.tokd_ui, "a"

#include "../common/incbin.h"

        INCBIN tokd_ui_index_html, "src/ui/index.html"
        INCBIN tokd_ui_app_js, "src/ui/app.js"
        INCBIN tokd_ui_app_css, "src/ui/app.css"

        .section .note.GNU-stack, "", @progbits
