/*
 * embed.S — the default vocabularies' manifests (and, with TOKD_EMBED_RANKS, their rank
 * files), built into the binary so that `tokd` runs with no files beside it (containers,
 * `make run`). Each file is page-aligned so that, once its
 * tables are built, the loader can hand the pages back to the kernel (embed.c).
 * The list of files must match the table in embed.c.
 */
        .section .rodata.tokd_vocab, "a"

#include "../common/incbin.h"

        /* a page-aligned file */
        .macro EMBED sym, file
        INCBIN \sym, "\file", 4096
        .endm

        /* an entry with nothing in it: "not built into this binary" */
        .macro ABSENT sym
        .global \sym\()_start
        .global \sym\()_end
\sym\()_start:
\sym\()_end:
        .endm

/* The rank files themselves only where they are parsed: the image generator and the
 * fuzzers, which run without an image. libtokd and tokd take the built-in models from
 * the image (vocab.c, "Images"), so the 7 MB of rank files would be dead weight there. */
#ifdef TOKD_EMBED_RANKS
        EMBED tok__embed_r50k_base_tiktoken, "vocab/r50k_base.tiktoken"
        EMBED tok__embed_p50k_base_tiktoken, "vocab/p50k_base.tiktoken"
        EMBED tok__embed_cl100k_base_tiktoken, "vocab/cl100k_base.tiktoken"
        EMBED tok__embed_o200k_base_tiktoken, "vocab/o200k_base.tiktoken"
#else
        ABSENT tok__embed_r50k_base_tiktoken
        ABSENT tok__embed_p50k_base_tiktoken
        ABSENT tok__embed_cl100k_base_tiktoken
        ABSENT tok__embed_o200k_base_tiktoken
#endif
        EMBED tok__embed_r50k_base_manifest, "vocab/r50k_base.manifest"
        EMBED tok__embed_p50k_base_manifest, "vocab/p50k_base.manifest"
        EMBED tok__embed_p50k_edit_manifest, "vocab/p50k_edit.manifest"
        EMBED tok__embed_cl100k_base_manifest, "vocab/cl100k_base.manifest"
        EMBED tok__embed_o200k_base_manifest, "vocab/o200k_base.manifest"

        .section .note.GNU-stack, "", @progbits
