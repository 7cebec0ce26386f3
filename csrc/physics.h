/* physics.h — 2-D constant-density acoustic forward modelling compatible with
 * OpenFWI (shared/specs/forward_modeling.md): edge-padded grid with a
 * quadratic damping profile, 2nd order in time / 4th order in space with
 * periodic neighbours at the padded edges, Ricker source added after each
 * update (v_src^2 dt^2 w[n]), receivers recorded after injection.
 *
 * Every (map, shot) pair is an independent simulation; the CPU version runs
 * one per OpenMP thread (so results do not depend on the thread count), the
 * CUDA twin advances all of them together, one launch per time step.
 */
#ifndef UBD_PHYSICS_H
#define UBD_PHYSICS_H

#include "ubd.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Acquisition and discretisation. Positions are interior cell indices
 * (0-based, z = row from the top, x = column). */
typedef struct {
    float dx;          /* grid spacing (m), dz = dx                   */
    float dt;          /* time step (s)                               */
    float freq;        /* Ricker peak frequency (Hz)                  */
    int nt;            /* time steps = samples per trace              */
    int nbc;           /* padding cells on every side                 */
    int ns;            /* shots                                       */
    const int *src_z;  /* (ns) source rows                            */
    const int *src_x;  /* (ns) source columns                         */
    int nr;            /* receivers                                   */
    const int *rec_z;  /* (nr) receiver rows                          */
    const int *rec_x;  /* (nr) receiver columns                       */
} ubd_fwd_params;

/* Largest stable Courant number v*dt/dx of the scheme: sqrt(3/8). */
#define UBD_FWD_MAX_CFL 0.6123724356957945

/* Ricker wavelet of the spec: w[k] = (1 - 2b) exp(-b), b = (pi f dt (nc - k))^2,
 * nw = 2 floor(2.2/(f dt)/2) + 1 samples, nc = floor(nw/2), w[k] = 0 for k >= nw.
 * w (n). */
ubd_status ubd_ricker(float *w, int n, float freq, float dt);
/* Samples of the non-zero part of the wavelet (147 for 15 Hz, 1 ms). */
int ubd_ricker_length(float freq, float dt);

/* Checks the parameters and positions against an (H, W) map. */
ubd_status ubd_fwd_check_params(const ubd_fwd_params *p, int H, int W);
/* Checks every map: finite, positive, and stable: v*dt/dx <= sqrt(3/8) in the
 * interior, and on the map's border (which the padding repeats out to the
 * strongest damping kappa_max) v*dt/dx <= sqrt(3/8 - 3 kappa_max / 16), see
 * ubd_fwd_cfl_limit. The message names the first offending map, cell, value.
 * vel (N, H, W). */
ubd_status ubd_fwd_check_velocity(const float *vel, int N, int H, int W, const ubd_fwd_params *p);
/* The stability check for one map given its statistics: vmin, vmax over all
 * cells, emax over the border cells (used by the CUDA twin). */
ubd_status ubd_fwd_check_stats(int map, float vmin, float vmax, float emax, const ubd_fwd_params *p);

/* Floats of CPU workspace for `slots` simulations running at once
 * (at most min(threads, N*ns) are used). */
size_t ubd_cpu_forward_model_workspace(int H, int W, const ubd_fwd_params *p, int slots);
#ifdef UBDIFF_WITH_CUDA
/* Floats of device workspace for N maps (all N*ns simulations at once). */
size_t ubd_cuda_forward_model_workspace(int N, int H, int W, const ubd_fwd_params *p);
#endif

/* Forward modelling of host arrays on backend `be` (NULL: the CPU): seis
 * (N, ns, nt, nr) = the records of vel (N, H, W) m/s. One arena holds the
 * backend's workspace (be->forward_model_work) and, off the host, the staged
 * maps and records, so the data cross the bus once each way; everything is
 * freed before it returns. The velocity checks run inside be->forward_model
 * (on the GPU from per-map statistics computed there). */
struct ubd_backend;
ubd_status ubd_forward_model_run(const struct ubd_backend *be, float *seis, const float *vel, int N, int H, int W,
                                 const ubd_fwd_params *p);

/* The ops (prototypes in backend.h, included at the end):
 * forward_model: seis (N, ns, nt, nr) = recorded pressure; vel (N, H, W) in
 *   m/s; work (work_floats) scratch. On the CPU as many simulations run
 *   concurrently as whole slots fit (see ubd_cpu_forward_model_workspace), at
 *   most one per thread; the CUDA twin runs all N*ns at once. seis, vel, work
 *   are backend memory; p and its position arrays stay on the host.
 * forward_model_work: *floats = the workspace forward_model needs for N maps
 *   on this backend (CPU: one slot per thread, at most N*ns). */

#ifdef __cplusplus
}
#endif
#include "backend.h" /* the prototypes */
#endif
