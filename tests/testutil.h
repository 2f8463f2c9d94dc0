/*
 * testutil.h — helpers shared by the Check suites. Tests run from the tests/ directory
 * (the Makefile cds there), so data paths are relative to it.
 */
#ifndef TOKD_TESTUTIL_H
#define TOKD_TESTUTIL_H

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tok.h"

/* The registry with every built-in encoding, loaded once per test process. */
const tok_registry *tu_registry(void);
const tok_encoding *tu_encoding(const char *name);

/* The names of the corpus's texts (data/corpus/NAME.txt), sorted, NULL-terminated; read
 * once per test process. */
const char *const *tu_corpus(void);

/* Reads a whole file; aborts the test when it cannot. Caller frees. */
char *tu_read_file(const char *path, size_t *len);

/* Parses a whitespace-separated id list; caller frees. */
uint32_t *tu_parse_ids(const char *text, size_t *n);

/* Asserts that a load (its result rc, registry and error) was refused with code, its
 * message containing needle, and no registry made. */
void tu_assert_refused(tok_err rc, const tok_registry *reg, const tok_error *err, tok_err code, const char *needle);

/* Writes code point c (not a surrogate, at most U+10FFFF) as UTF-8 at out (room for 4
 * bytes); returns how many bytes. For the random-text tests. */
size_t tu_utf8_put(char *out, uint32_t c);

/* Writes a file under a fresh temporary directory; returns the directory (static). */
const char *tu_tempdir(void);
void tu_write(const char *dir, const char *name, const char *text);

extern const char *const TU_ENCODINGS[5];

/* The open models of check_hf.c, or NULL when they are not fetched. */
#define TU_N_HF_MODELS 11
extern const char *const TU_HF_MODELS[TU_N_HF_MODELS];
const tok_encoding *tu_hf_encoding(const char *model);     /* tokenizer.json alone */
const tok_encoding *tu_hf_dir_encoding(const char *model); /* deepseek_v3, llama3_1 dirs */
/* The model, or NULL after saying it is skipped (a failure when TOKD_REQUIRE_MODELS=1). */
const tok_encoding *tu_hf_model_or_skip(const char *model);

/* A suite of one test case (more may be added): the case's tests time out after timeout_s
 * seconds; *tc receives the case, for the tests. */
Suite *tu_suite(const char *name, const char *case_name, double timeout_s, TCase **tc);

/* A suite of one test case from a list of its tests, TESTS(T, L): T(test) for a test,
 * L(test, n) for a loop test run for _i = 0..n-1. Defines Suite *NAME_suite(void). */
#define TU_ADD_TEST(test) tcase_add_test(tc, test);
#define TU_ADD_LOOP(test, n) tcase_add_loop_test(tc, test, 0, n);
#define TU_SUITE(name, case_name, timeout_s, TESTS)                 \
  Suite *name##_suite(void)                                         \
  {                                                                 \
    TCase *tc;                                                      \
    Suite *s = tu_suite(#name, case_name, timeout_s, &tc);          \
    TESTS(TU_ADD_TEST, TU_ADD_LOOP)                                 \
    return s;                                                       \
  }

/* Every Check suite, in the order they run: one list for the declarations here and the
 * runner (make unit-test SUITE=name runs one). A new tests/check_X.c adds X here. */
#define TU_SUITES(X) \
  X(utf8) X(phash) X(vocab) X(bpe) X(encode) X(golden) X(hf) X(normalize) X(scan) X(sweep) X(split) X(prefix) X(util)
#define TU_DECLARE_SUITE(name) Suite *name##_suite(void);
TU_SUITES(TU_DECLARE_SUITE)

#endif
