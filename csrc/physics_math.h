/* physics_math.h — scalar formulas of the forward-modelling scheme, shared
 * verbatim by the CPU code (cpu/forward_model.c) and the CUDA kernels so both
 * backends build the same coefficients (shared/specs/forward_modeling.md). */
#ifndef UBD_PHYSICS_MATH_H
#define UBD_PHYSICS_MATH_H

#include <math.h>

#include "philox.h" /* UBD_HD */

/* Stencil weights of the 4th-order second derivative (the centre, -5/2 per
 * axis, is folded into the cell coefficient 2 - 5 alpha - kappa). */
#define UBD_FD_C1 (4.0f / 3.0f)
#define UBD_FD_C2 (-1.0f / 12.0f)

/* alpha = (v dt / dx)^2, in double then rounded once. */
UBD_HD float ubd_fwd_alpha(float v, float dt, float dx) {
    double c = (double)v * (double)dt / (double)dx;
    return (float)(c * c);
}

/* kappa = d dt for the padding cell `i` cells outward from the interior
 * (i = 0 next to it): d = d0 (i dx / L)^2, d0 = 3 vmin ln(1e7) / (2 L),
 * L = (nbc - 1) dx. A padding of one cell has L = 0: no damping then. */
UBD_HD float ubd_fwd_kappa(int i, float vmin, float dx, float dt, int nbc) {
    if (nbc < 2) return 0.0f;
    double L = (double)(nbc - 1) * (double)dx;
    double d0 = 3.0 * (double)vmin * log(1e7) / (2.0 * L);
    double r = (double)i * (double)dx / L;
    return (float)(d0 * r * r * (double)dt);
}

/* Largest stable v dt / dx in a cell with damping kappa. Per Fourier mode
 * the update is z^2 - (2 - lam - kappa) z + (1 - kappa) = 0 with lam = alpha mu,
 * mu <= 32/3 the largest eigenvalue of the 4th-order 2-D Laplacian stencil;
 * both roots stay in the unit circle iff lam <= 4 - 2 kappa, i.e.
 * alpha <= 3/8 - 3 kappa / 16 (sqrt(3/8) with no damping). A frozen-coefficient
 * bound, checked numerically: maps just above it blow up. */
UBD_HD double ubd_fwd_cfl_limit(double kappa) {
    double a = 0.375 - 0.1875 * kappa;
    return a > 0.0 ? sqrt(a) : 0.0;
}

/* Padding-strip index of padded coordinate `q` along an axis of `n` interior
 * cells: -1 inside the interior, else 0 .. nbc-1 counting outward. */
UBD_HD int ubd_fwd_strip(int q, int n, int nbc) {
    if (q < nbc) return nbc - 1 - q;
    if (q >= nbc + n) return q - (nbc + n);
    return -1;
}

/* Interior index of a padded coordinate (edge repetition = clamping). */
UBD_HD int ubd_fwd_clamp(int q, int n, int nbc) {
    int i = q - nbc;
    return i < 0 ? 0 : (i >= n ? n - 1 : i);
}

/* Sample k of the Ricker wavelet with nw samples (0 for k >= nw):
 * (1 - 2b) exp(-b), b = (pi f dt (nc - k))^2, nc = nw / 2. */
UBD_HD float ubd_ricker_sample(int k, int nw, float freq, float dt) {
    if (k < 0 || k >= nw) return 0.0f;
    double a = 3.14159265358979323846 * (double)freq * (double)dt * (double)(nw / 2 - k);
    double b = a * a;
    return (float)((1.0 - 2.0 * b) * exp(-b));
}

/* Periodic index on [0, n) for |q| < n (the padded grid wraps around). */
UBD_HD int ubd_fwd_wrap(int q, int n) { return q < 0 ? q + n : (q >= n ? q - n : q); }

#endif
