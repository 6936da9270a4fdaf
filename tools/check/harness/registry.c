/* registry.c -- the scenarios compiled into the checker, in report order. */
#include "explore.h"

extern const chk_proto_t chk_proto_ring;

const chk_proto_t *chk_protocols[] = {
    &chk_proto_ring,
    NULL,
};
