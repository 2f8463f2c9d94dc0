/*
 * fuzz_request.c — fuzz target for the request parser (request.c): any body, as JSON for
 * every POST endpoint and as text/plain, gives a request or an error with a status and
 * valid UTF-8, never a crash; a parsed request respects its limits, and its texts lie
 * inside the body. Replayed over tests/data/fuzz/request/ by `make test`.
 */
#include <stdlib.h>
#include <string.h>

#include "serve/request.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

static void check_error(const tokd_http_error *e)
{
  if (e->status < 400 || e->status > 599 || !e->code || !e->message[0]) abort();
  if (!tok_utf8_valid(e->message, strlen(e->message), NULL) || !tok_utf8_valid(e->param, strlen(e->param), NULL))
    abort();
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
  static const tokd_endpoint eps[] = {EP_ENCODE, EP_COUNT, EP_DECODE, EP_TOKENIZE, EP_DETOKENIZE,
                                      EP_RENDER_CHAT, EP_RENDER_COMPLETION, EP_MESSAGES_COUNT,
                                      EP_RESPONSES_COUNT};
  tokd_parse_limits lim = {8, 1000};
  char *body = malloc(size + 1);
  for (size_t i = 0; i < sizeof eps / sizeof eps[0]; i++) {
    for (int text = 0; text < 2; text++) {
      memcpy(body, data, size); /* parsing works in place */
      tokd_request req;
      tokd_http_error err;
      tokd_request_init(&req, eps[i]);
      tokd_query q = {"add_special_tokens", "false"};
      bool ok = text ? tokd_request_parse_text(&req, body, size, &q, 1, &lim, &err)
                     : tokd_request_parse_json(&req, body, size, &lim, &err);
      if (ok) {
        if (req.n_texts > 8 || req.n_lists > 8 || req.n_ids > 1000) abort();
        if (req.n_lists && req.list_start[req.n_lists] != req.n_ids) abort();
        for (size_t t = 0; t < req.n_texts; t++)
          if (req.texts[t].s < body || req.texts[t].s + req.texts[t].len > body + size) abort();
        /* the render and provider fields kept raw lie inside the body too */
        for (int f = 0; f < TOKD_F__COUNT; f++)
          if (req.raw[f].s && (req.raw[f].s < body || req.raw[f].s + req.raw[f].len > body + size)) abort();
      } else {
        check_error(&err);
      }
      tokd_request_free(&req);
    }
  }
  free(body);
  return 0;
}
