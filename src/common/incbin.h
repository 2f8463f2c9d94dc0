/*
 * incbin.h — the one assembler macro that builds a file into the binary, for the .S files
 * that embed data (core/embed.S: the vocabularies; serve/ui_data.S: the playground).
 * Included by the C preprocessor, so only assembler may follow.
 *
 *   INCBIN sym, "file"[, align]
 *
 * defines sym_start and sym_end around the file's bytes (at an `align`-byte boundary, 1
 * unless given) and one 0 byte after them, so that a text file can be read as a C string.
 */
        .macro INCBIN sym, file, align=1
        .balign \align
        .global \sym\()_start
        .global \sym\()_end
\sym\()_start:
        .incbin "\file"
\sym\()_end:
        .byte 0
        .endm
