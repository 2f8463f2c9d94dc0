/*
 * routes.c — the tables generated from routes.h, and route lookup.
 */
#include "serve/routes.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>

const tokd_route TOKD_ROUTES[EP__COUNT] = {
#define X(id, label, path, alias, method, handler, fields, lenient) {label, path, alias, method, fields, lenient},
    TOKD_ENDPOINTS(X)
#undef X
    {"other", NULL, NULL, TOKD_GET, 0, false},
};

const char *const TOKD_FIELD_NAMES[TOKD_F__COUNT] = {
#define X(id, name) name,
    TOKD_FIELDS(X)
#undef X
};

tokd_endpoint tokd_route_find(const char *path)
{
  for (int i = 0; i < EP_OTHER; i++)
    if (!strcmp(path, TOKD_ROUTES[i].path) || (TOKD_ROUTES[i].alias && !strcmp(path, TOKD_ROUTES[i].alias)))
      return (tokd_endpoint)i;
  return EP_OTHER;
}

tokd_error_shape tokd_route_error_shape(tokd_endpoint ep)
{
  switch (ep) {
  case EP_RENDER_CHAT: case EP_RENDER_COMPLETION: case EP_MODELS: case EP_RESPONSES_COUNT:
    return TOKD_ERRORS_VLLM;
  case EP_MESSAGES_RENDER: case EP_MESSAGES_COUNT:
    return TOKD_ERRORS_ANTHROPIC;
  default:
    return TOKD_ERRORS_TOKD;
  }
}

const char *tokd_route_list(char *list, size_t cap)
{
  size_t o = 0;
  list[0] = '\0';
  for (int m = 0; m < 2; m++) {
    if (o < cap) o += (size_t)snprintf(list + o, cap - o, "%s%s ", m ? " or " : "", m ? "GET" : "POST");
    bool first = true;
    for (int i = 0; i < EP_OTHER; i++)
      if ((int)TOKD_ROUTES[i].method == (m ? TOKD_GET : TOKD_POST) && i != EP_UI_JS && i != EP_UI_CSS) {
        if (o < cap) o += (size_t)snprintf(list + o, cap - o, "%s%s", first ? "" : ", ", TOKD_ROUTES[i].path);
        first = false;
      }
  }
  return list;
}
