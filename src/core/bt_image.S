/*
 * bt_image.S — the backtracking encoder's tables of the built-in vocabularies, built at
 * build time by tools/gen_bt_image.c (build/.../bt_image.bin) and embedded here, so that
 * the fast encoder answers from the first byte with nothing to build (backtrack.c,
 * "Images"). Assembled without TOKD_BT_IMAGE it is empty: the generator itself links that,
 * and so do builds that compile the sources directly (the fuzz targets); their tables are
 * then built at run time, with the same result.
 */
        .section .rodata.tokd_bt_image, "a"
        .balign 4096
        .global tok__bt_image_start
        .global tok__bt_image_end
tok__bt_image_start:
#ifdef TOKD_BT_IMAGE
        .incbin TOKD_BT_IMAGE
#endif
tok__bt_image_end:
        .byte 0

        .section .note.GNU-stack, "", @progbits
