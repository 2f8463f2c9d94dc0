/*
 * ui_data.S — the token playground (src/ui/), built into the binary so that the page works
 * with no files beside it and no network. The list must match the table in ui.c.
 */
        .section .rodata.tokd_ui, "a"

        .macro EMBED sym, file
        .global \sym\()_start
        .global \sym\()_end
\sym\()_start:
        .incbin "\file"
\sym\()_end:
        .byte 0
        .endm

        EMBED tokd_ui_index_html, "src/ui/index.html"
        EMBED tokd_ui_app_js, "src/ui/app.js"
        EMBED tokd_ui_app_css, "src/ui/app.css"

        .section .note.GNU-stack, "", @progbits
