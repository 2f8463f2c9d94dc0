/*
 * fuzz_chat.c — fuzz target for chat templates (src/chat/): any template and any
 * conversation give a rendering or an error, never a crash, a hang or unbounded memory.
 * Input: a template, then the line "----", then a request body (vLLM's chat /tokenize
 * fields); without the line the whole input is the template and a fixed conversation is
 * used. Checked: a failed parse or render names its reason in valid UTF-8 and leaves the
 * output as it was; a rendering is valid UTF-8 (templates and conversations are) and within
 * its limit. Replayed over tests/data/fuzz/chat/ by `make test`.
 */
#include <stdlib.h>
#include <string.h>

#include "tok_chat.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

static const char DEFAULT_BODY[] =
    "{\"messages\":[{\"role\":\"system\",\"content\":\"Be brief.\"},{\"role\":\"user\",\"content\":"
    "\"Hi \\u00e9 \\ud83d\\udc4b\"},{\"role\":\"assistant\",\"content\":\"Hello\",\"tool_calls\":[{\"type\":"
    "\"function\",\"function\":{\"name\":\"f\",\"arguments\":{\"a\":1.5,\"b\":[true,null]}}}]},"
    "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"part\"}]}],"
    "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\"}}],"
    "\"chat_template_kwargs\":{\"enable_thinking\":false}}";

static void check_error(const tok_error *err)
{
  if (!err->detail[0] || !tok_utf8_valid(err->detail, strlen(err->detail), NULL)) abort();
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
  const char *text = (const char *)data;
  size_t tmpl_len = size;
  const char *body = DEFAULT_BODY;
  size_t body_len = sizeof DEFAULT_BODY - 1;
  for (size_t i = 0; i + 6 <= size; i++)
    if (!memcmp(text + i, "\n----\n", 6)) {
      tmpl_len = i;
      body = text + i + 6;
      body_len = size - i - 6;
      break;
    }
  tok_chat_template *t = NULL;
  tok_error err;
  if (tok_chat_template_parse(text, tmpl_len, &t, &err) != TOK_OK) {
    check_error(&err);
    return 0;
  }
  tok_chat_request req = {.bos_token = "<s>", .eos_token = "</s>", .now = 1700000000};
  bool add_special;
  if (tok_chat_request_from_body(body, body_len, &req, &add_special, &err) != TOK_OK) {
    check_error(&err);
    tok_chat_template_free(t);
    return 0;
  }
  tok_chat_limits lim = {.max_memory = 8u << 20, .max_steps = 200000, .max_output = 1u << 16,
                         .max_depth = 16};
  tok_buf out = {.limit = 1u << 17};
  if (tok_buf_append(&out, "x", 1) != TOK_OK) abort();
  tok_err rc = tok_chat_render(t, &req, &lim, &out, &err);
  if (rc != TOK_OK) {
    check_error(&err);
    if (out.len != 1) abort();
  } else {
    if (out.len - 1 > lim.max_output) abort();
    if (!tok_utf8_valid(out.data, out.len, NULL)) abort();
  }
  tok_buf_free(&out);
  tok_chat_template_free(t);
  return 0;
}
