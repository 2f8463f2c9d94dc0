/*
 * ui.c — GET /, /ui, /ui/app.js, /ui/app.css: the token playground, a page built into the
 * binary (src/ui/, embedded by ui_data.S). It uses only the public API; the daemon sends it
 * with a Content-Security-Policy that allows no inline script and no other origin
 * (tokd_ui_headers), and `--ui off` removes these routes.
 */
#include <string.h>

#include "serve/server.h"

extern const char tokd_ui_index_html_start[], tokd_ui_index_html_end[];
extern const char tokd_ui_app_js_start[], tokd_ui_app_js_end[];
extern const char tokd_ui_app_css_start[], tokd_ui_app_css_end[];

static bool asset(tok_buf *out, const char *start, const char *end, tokd_http_error *e)
{
  if (tok_buf_append(out, start, (size_t)(end - start)) == TOK_OK) return true;
  tokd_error_set(e, 503, "out_of_memory", NULL, "out of memory; retry later");
  return false;
}

bool tokd_handle_ui(const tokd_server *srv, tokd_worker *w, const tokd_request *req,
                    tok_buf *out, unsigned long long *tokens, tokd_http_error *e)
{
  (void)srv, (void)w, (void)req, (void)tokens;
  return asset(out, tokd_ui_index_html_start, tokd_ui_index_html_end, e);
}

bool tokd_handle_ui_js(const tokd_server *srv, tokd_worker *w, const tokd_request *req,
                       tok_buf *out, unsigned long long *tokens, tokd_http_error *e)
{
  (void)srv, (void)w, (void)req, (void)tokens;
  return asset(out, tokd_ui_app_js_start, tokd_ui_app_js_end, e);
}

bool tokd_handle_ui_css(const tokd_server *srv, tokd_worker *w, const tokd_request *req,
                        tok_buf *out, unsigned long long *tokens, tokd_http_error *e)
{
  (void)srv, (void)w, (void)req, (void)tokens;
  return asset(out, tokd_ui_app_css_start, tokd_ui_app_css_end, e);
}

const char *tokd_content_type(tokd_endpoint ep)
{
  switch (ep) {
  case EP_METRICS: return "text/plain; version=0.0.4; charset=utf-8";
  case EP_UI: return "text/html; charset=utf-8";
  case EP_UI_JS: return "text/javascript; charset=utf-8";
  case EP_UI_CSS: return "text/css; charset=utf-8";
  default: return "application/json";
  }
}

bool tokd_is_ui(tokd_endpoint ep)
{
  return ep == EP_UI || ep == EP_UI_JS || ep == EP_UI_CSS;
}

/* Everything from this server, nothing inline, no frames, no forms, no other origin. */
const char TOKD_UI_CSP[] =
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";
