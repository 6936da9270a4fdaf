/* registry.c -- the scenarios compiled into the checker, in report order. */
#include "explore.h"

extern const chk_proto_t chk_proto_state;
extern const chk_proto_t chk_proto_ring;
extern const chk_proto_t chk_proto_localq;
extern const chk_proto_t chk_proto_freelist;
extern const chk_proto_t chk_proto_park;
extern const chk_proto_t chk_proto_join;
extern const chk_proto_t chk_proto_client;
extern const chk_proto_t chk_proto_budget;
extern const chk_proto_t chk_proto_sendq;
extern const chk_proto_t chk_proto_holds;

const chk_proto_t *chk_protocols[] = {
    &chk_proto_state,
    &chk_proto_ring,
    &chk_proto_localq,
    &chk_proto_freelist,
    &chk_proto_park,
    &chk_proto_join,
    &chk_proto_client,
    &chk_proto_budget,
    &chk_proto_sendq,
    &chk_proto_holds,
    NULL,
};
