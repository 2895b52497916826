/* SPDX-License-Identifier: MIT */
/* test_cluster.c -- CRC16 and slots, hash tags, slot maps from CLUSTER SHARDS / SLOTS replies,
 * redirections, REDIS_CLUSTER_NODES. Replies are read from RESP text by hiredis's own reader. */
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "gk/cluster.h"
#include "gk/config.h"
#include "unit/suites.h"

/* The reply that RESP text resp reads as. Caller frees it with freeReplyObject. */
static redisReply *
reply_of(const char *resp)
{
    redisReader *rd = redisReaderCreate();
    void *r = NULL;

    ck_assert_int_eq(redisReaderFeed(rd, resp, strlen(resp)), REDIS_OK);
    ck_assert_int_eq(redisReaderGetReply(rd, &r), REDIS_OK);
    ck_assert_ptr_nonnull(r);
    redisReaderFree(rd);
    return r;
}

START_TEST(crc16_vectors)
{
    ck_assert_uint_eq(gk_cluster_crc16("123456789", 9), 0x31c3); /* CRC-16/XMODEM check value */
    ck_assert_uint_eq(gk_cluster_crc16("", 0), 0);
    /* What CLUSTER KEYSLOT answers. */
    ck_assert_uint_eq(gk_cluster_key_slot("foo", 3), 12182);
    ck_assert_uint_eq(gk_cluster_key_slot("bar", 3), 5061);
    ck_assert_uint_eq(gk_cluster_key_slot("somekey", 7), 11058);
    ck_assert_uint_eq(gk_cluster_key_slot("foo{hash_tag}", 13), 2515);
}
END_TEST

START_TEST(hash_tags)
{
    uint16_t shop = gk_cluster_key_slot("shop", 4);

    ck_assert_uint_eq(gk_cluster_business_slot("shop"), shop);
    ck_assert_uint_eq(gk_cluster_key_slot("gk:{shop}:wait", 14), shop);
    ck_assert_uint_eq(gk_cluster_key_slot("gk:{shop}:seen:u}1", 18), shop);
    /* An empty tag hashes the whole key; only the first tag counts; "{{a}" tags "{a". */
    ck_assert_uint_eq(gk_cluster_key_slot("x{}{shop}", 9), gk_cluster_crc16("x{}{shop}", 9) % 16384);
    ck_assert_uint_eq(gk_cluster_key_slot("x{shop}{y}", 10), shop);
    ck_assert_uint_eq(gk_cluster_key_slot("x{{a}}", 6), gk_cluster_key_slot("{a", 2));
    ck_assert_uint_eq(gk_cluster_key_slot("x{shop", 6), gk_cluster_crc16("x{shop", 6) % 16384);
}
END_TEST

START_TEST(map_from_slots)
{
    struct gk_cluster_map *m = malloc(sizeof(*m));
    redisReply *r = reply_of("*2\r\n"
                             "*4\r\n:0\r\n:8191\r\n*3\r\n$9\r\n127.0.0.1\r\n:7000\r\n$2\r\nid\r\n"
                             "*3\r\n$9\r\n127.0.0.1\r\n:7003\r\n$2\r\nir\r\n"
                             "*3\r\n:8192\r\n:16383\r\n*3\r\n$0\r\n\r\n:7001\r\n$2\r\nid\r\n");
    redisReply *bad = reply_of("*1\r\n*3\r\n:9\r\n:3\r\n*2\r\n$1\r\nh\r\n:1\r\n");

    gk_cluster_map_clear(m);
    ck_assert_ptr_null(gk_cluster_map_lookup(m, 5));
    ck_assert_int_eq(gk_cluster_map_parse_slots(m, r, "10.0.0.9"), GK_OK);
    ck_assert_uint_eq(m->n_nodes, 2);
    ck_assert_str_eq(gk_cluster_map_lookup(m, 0)->host, "127.0.0.1");
    ck_assert_uint_eq(gk_cluster_map_lookup(m, 8191)->port, 7000);
    ck_assert_str_eq(gk_cluster_map_lookup(m, 8192)->host, "10.0.0.9"); /* "" = the node asked */
    ck_assert_uint_eq(gk_cluster_map_lookup(m, 16383)->port, 7001);
    ck_assert_int_eq(gk_cluster_map_parse_slots(m, bad, "h"), GK_EINVAL); /* 9..3: kept the map */
    ck_assert_uint_eq(gk_cluster_map_lookup(m, 16383)->port, 7001);
    freeReplyObject(r);
    freeReplyObject(bad);
    free(m);
}
END_TEST

START_TEST(map_from_shards)
{
    struct gk_cluster_map *m = malloc(sizeof(*m));
    /* Shard 1: slots 0-99 and 200-299, its master failed and a replica online (not promoted
     * yet: unknown); shard 2: 100-199 and 300-16383, master online on endpoint 10.0.0.2:7001. */
    redisReply *r =
        reply_of("*2\r\n"
                 "*4\r\n$5\r\nslots\r\n*4\r\n:0\r\n:99\r\n:200\r\n:299\r\n$5\r\nnodes\r\n*2\r\n"
                 "*8\r\n$4\r\nport\r\n:7000\r\n$2\r\nip\r\n$1\r\na\r\n$4\r\nrole\r\n$6\r\nmaster\r\n$"
                 "6\r\nhealth\r\n$4\r\nfail\r\n"
                 "*8\r\n$4\r\nport\r\n:7003\r\n$2\r\nip\r\n$1\r\nb\r\n$4\r\nrole\r\n$7\r\nreplica\r\n$"
                 "6\r\nhealth\r\n$6\r\nonline\r\n"
                 "*4\r\n$5\r\nslots\r\n*4\r\n:100\r\n:199\r\n:300\r\n:16383\r\n$5\r\nnodes\r\n*1\r\n"
                 "*10\r\n$4\r\nport\r\n:7001\r\n$2\r\nip\r\n$1\r\nc\r\n$8\r\nendpoint\r\n$8\r\n10.0.0.2\r\n"
                 "$4\r\nrole\r\n$6\r\nmaster\r\n$6\r\nhealth\r\n$6\r\nonline\r\n");
    redisReply *err = reply_of("-ERR unknown subcommand 'SHARDS'\r\n");

    gk_cluster_map_clear(m);
    ck_assert_int_eq(gk_cluster_map_parse_shards(m, r, "x"), GK_OK);
    ck_assert_uint_eq(m->n_nodes, 1);
    ck_assert_ptr_null(gk_cluster_map_lookup(m, 50));
    ck_assert_ptr_null(gk_cluster_map_lookup(m, 250));
    ck_assert_str_eq(gk_cluster_map_lookup(m, 150)->host, "10.0.0.2");
    ck_assert_uint_eq(gk_cluster_map_lookup(m, 16383)->port, 7001);
    ck_assert_int_eq(gk_cluster_map_parse_shards(m, err, "x"), GK_EINVAL);
    ck_assert_int_eq(gk_cluster_map_parse_slots(m, err, "x"), GK_EINVAL);
    freeReplyObject(r);
    freeReplyObject(err);
    free(m);
}
END_TEST

START_TEST(map_bounds_its_nodes)
{
    struct gk_cluster_map *m = malloc(sizeof(*m));
    size_t idx;

    gk_cluster_map_clear(m);
    for (uint16_t i = 0; i < GK_CLUSTER_NODES_MAX; i++)
        ck_assert_int_eq(gk_cluster_map_node(m, "h", (uint16_t)(1000 + i), &idx), GK_OK);
    ck_assert_int_eq(gk_cluster_map_node(m, "h", 1000, &idx), GK_OK);
    ck_assert_uint_eq(idx, 0);
    ck_assert_int_eq(gk_cluster_map_node(m, "h", 9, &idx), GK_ENOMEM);
    ck_assert_int_eq(gk_cluster_map_node(m, "", 9, &idx), GK_EINVAL);
    free(m);
}
END_TEST

START_TEST(redirects)
{
    struct gk_cluster_redirect d;

    ck_assert_int_eq(gk_cluster_classify("MOVED 3999 127.0.0.1:6381", "x", &d), GK_CLUSTER_MOVED);
    ck_assert_uint_eq(d.slot, 3999);
    ck_assert_str_eq(d.to.host, "127.0.0.1");
    ck_assert_uint_eq(d.to.port, 6381);
    ck_assert_int_eq(gk_cluster_classify("ASK 3999 ::1:7002", "x", &d), GK_CLUSTER_ASK);
    ck_assert_str_eq(d.to.host, "::1");
    ck_assert_uint_eq(d.to.port, 7002);
    ck_assert_int_eq(gk_cluster_classify("MOVED 12 :7005", "10.1.1.1", &d), GK_CLUSTER_MOVED);
    ck_assert_str_eq(d.to.host, "10.1.1.1");
    ck_assert_int_eq(gk_cluster_classify("TRYAGAIN Multiple keys request during rehashing of slot", "x", &d),
                     GK_CLUSTER_TRYAGAIN);
    ck_assert_int_eq(gk_cluster_classify("CLUSTERDOWN The cluster is down", "x", &d), GK_CLUSTER_TRYAGAIN);
    ck_assert_int_eq(gk_cluster_classify("LOADING Redis is loading", "x", &d), GK_CLUSTER_TRYAGAIN);
    ck_assert_int_eq(gk_cluster_classify("NOSCRIPT No matching script", "x", &d), GK_CLUSTER_OK);
    ck_assert_int_eq(gk_cluster_classify("MOVED 16384 h:1", "x", &d), GK_CLUSTER_OK);
    ck_assert_int_eq(gk_cluster_classify("MOVED 1 h:0", "x", &d), GK_CLUSTER_OK);
    ck_assert_int_eq(gk_cluster_classify("MOVED 1", "x", &d), GK_CLUSTER_OK);
    ck_assert_int_eq(gk_cluster_classify("MOVEDX 1 h:1", "x", &d), GK_CLUSTER_OK);
    ck_assert_int_eq(gk_cluster_backoff_ms(0), GK_CLUSTER_BACKOFF_MS);
    ck_assert_int_eq(gk_cluster_backoff_ms(2), 4 * GK_CLUSTER_BACKOFF_MS);
    ck_assert_int_eq(gk_cluster_backoff_ms(40), 64 * GK_CLUSTER_BACKOFF_MS);
}
END_TEST

START_TEST(seed_lists)
{
    struct gk_redis_addr *a = malloc(sizeof(*a));
    char err[160];

    ck_assert_int_eq(gk_redis_cluster_parse("10.0.0.1:7000,h2:7001,[::1]:7002", a, err, sizeof(err)), GK_OK);
    ck_assert(a->cluster);
    ck_assert_uint_eq(a->n_seeds, 3);
    ck_assert_str_eq(a->host, "10.0.0.1");
    ck_assert_uint_eq(a->port, 7000);
    ck_assert_str_eq(a->seeds[1].host, "h2");
    ck_assert_str_eq(a->seeds[2].host, "::1");
    ck_assert_uint_eq(a->seeds[2].port, 7002);
    ck_assert_str_eq(a->password, "");
    ck_assert_int_eq(gk_redis_cluster_parse("redis://:s3cret@h1:7000,h2:7001", a, err, sizeof(err)), GK_OK);
    ck_assert_str_eq(a->password, "s3cret");
    ck_assert_uint_eq(a->n_seeds, 2);
    ck_assert_int_eq(gk_redis_cluster_parse("", a, err, sizeof(err)), GK_EINVAL);
    ck_assert_int_eq(gk_redis_cluster_parse("h1:7000,,h2:1", a, err, sizeof(err)), GK_EINVAL);
    ck_assert_int_eq(gk_redis_cluster_parse("h1:99999", a, err, sizeof(err)), GK_EINVAL);
    ck_assert_int_eq(gk_redis_cluster_parse("redis://h1:7000/2", a, err, sizeof(err)), GK_EINVAL);
    ck_assert_int_eq(gk_redis_cluster_parse("h1:7000,redis://:p@h2:1", a, err, sizeof(err)), GK_EINVAL);
    ck_assert_int_eq(
        gk_redis_cluster_parse("a:1,a:1,a:1,a:1,a:1,a:1,a:1,a:1,a:1,a:1,a:1,a:1,a:1,a:1,a:1,a:1,a:1", a, err,
                               sizeof(err)),
        GK_EINVAL);
    free(a);
}
END_TEST

Suite *
cluster_suite(void)
{
    Suite *s = suite_create("cluster");
    TCase *tc = tcase_create("core");

    tcase_add_test(tc, crc16_vectors);
    tcase_add_test(tc, hash_tags);
    tcase_add_test(tc, map_from_slots);
    tcase_add_test(tc, map_from_shards);
    tcase_add_test(tc, map_bounds_its_nodes);
    tcase_add_test(tc, redirects);
    tcase_add_test(tc, seed_lists);
    suite_add_tcase(s, tc);
    return s;
}
