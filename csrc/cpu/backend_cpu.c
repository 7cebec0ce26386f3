/* backend_cpu.c — the CPU backend table: every entry of UBD_BACKEND_OPS
 * (backend.h) is its ubd_cpu_<op>. */
#include "backend.h"

const ubd_backend ubd_backend_table_cpu = {
    .name = "cpu",
    .host_memory = 1,
    .math = UBD_MATH_FP32, /* strict float32 in every mode: the CPU has no TF32 */
#define UBD_CPU_ENTRY(op, params) .op = ubd_cpu_##op,
    UBD_BACKEND_OPS(UBD_CPU_ENTRY)
#undef UBD_CPU_ENTRY
};
