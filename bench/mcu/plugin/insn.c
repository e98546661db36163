/*
 * A TCG plugin for QEMU 7.2 that counts the guest instructions executed and writes the total to
 * a file when QEMU exits:
 *
 *   qemu-system-arm ... -plugin file=libinsn.so,out=/tmp/count
 *
 * With `profile=/tmp/tbs` it also writes one line per translation block, `ADDRESS INSNS RUNS`
 * (hex address, instructions in the block, times it ran), for a per-function profile
 * (bench/scripts/mcu-profile maps the addresses to functions with addr2line).
 *
 * Same technique as QEMU's own tests/plugin/insn.c (an inline add of each translation block's
 * instruction count when the block runs), which Debian does not ship. The plugin API is declared
 * here rather than taken from qemu-plugin.h (not packaged either); these are the v1 signatures,
 * which QEMU 7.2 implements.
 *
 * Build: gcc -O2 -shared -fPIC -fvisibility=hidden -o libinsn.so insn.c
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EXPORT __attribute__((visibility("default")))

typedef uint64_t qemu_plugin_id_t;
struct qemu_plugin_tb;
typedef struct qemu_info_t qemu_info_t;
enum qemu_plugin_op { QEMU_PLUGIN_INLINE_ADD_U64 };
typedef void (*qemu_plugin_vcpu_tb_trans_cb_t)(qemu_plugin_id_t id, struct qemu_plugin_tb *tb);
typedef void (*qemu_plugin_udata_cb_t)(qemu_plugin_id_t id, void *userdata);

void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t id, qemu_plugin_vcpu_tb_trans_cb_t cb);
void qemu_plugin_register_vcpu_tb_exec_inline(struct qemu_plugin_tb *tb, enum qemu_plugin_op op,
                                              void *ptr, uint64_t imm);
size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *tb);
void qemu_plugin_register_atexit_cb(qemu_plugin_id_t id, qemu_plugin_udata_cb_t cb, void *userdata);
uint64_t qemu_plugin_tb_vaddr(const struct qemu_plugin_tb *tb);

EXPORT int qemu_plugin_version = 1;

/* One vCPU (mps2-an386 has one): a plain counter is exact. */
static uint64_t insns;
static char out_path[4096];
static char profile_path[4096];

/* Per translation block, for the profile: never freed (QEMU exits). */
struct block {
    uint64_t vaddr;
    uint64_t n_insns;
    uint64_t runs;
    struct block *next;
};
static struct block *blocks;

static void tb_trans(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    (void)id;
    size_t n = qemu_plugin_tb_n_insns(tb);
    qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64, &insns, n);
    if (profile_path[0]) {
        struct block *b = calloc(1, sizeof *b);
        if (b) {
            b->vaddr = qemu_plugin_tb_vaddr(tb);
            b->n_insns = n;
            b->next = blocks;
            blocks = b;
            qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64, &b->runs, 1);
        }
    }
}

static void at_exit(qemu_plugin_id_t id, void *userdata)
{
    (void)id;
    (void)userdata;
    FILE *f = out_path[0] ? fopen(out_path, "w") : NULL;
    fprintf(f ? f : stderr, "insns %llu\n", (unsigned long long)insns);
    if (f) {
        fclose(f);
    }
    FILE *p = profile_path[0] ? fopen(profile_path, "w") : NULL;
    if (p) {
        for (struct block *b = blocks; b; b = b->next) {
            if (b->runs) {
                fprintf(p, "%llx %llu %llu\n", (unsigned long long)b->vaddr,
                        (unsigned long long)b->n_insns, (unsigned long long)b->runs);
            }
        }
        fclose(p);
    }
}

EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info, int argc, char **argv)
{
    (void)info;
    for (int i = 0; i < argc; i++) {
        if (strncmp(argv[i], "out=", 4) == 0) {
            snprintf(out_path, sizeof out_path, "%s", argv[i] + 4);
        } else if (strncmp(argv[i], "profile=", 8) == 0) {
            snprintf(profile_path, sizeof profile_path, "%s", argv[i] + 8);
        }
    }
    qemu_plugin_register_vcpu_tb_trans_cb(id, tb_trans);
    qemu_plugin_register_atexit_cb(id, at_exit, NULL);
    return 0;
}
