// reduce.cuh — deterministic block reductions in double for the norm kernels.
// The summation order depends only on blockDim and the data, never on timing,
// so results are reproducible run to run.
#ifndef UBD_CUDA_REDUCE_CUH
#define UBD_CUDA_REDUCE_CUH

#define UBD_NORM_BLOCK 256  // threads per block of the reduction kernels (multiple of 32)

__device__ __forceinline__ double ubd_warp_sum(double v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
    return v;
}

// Sum of v over the block, returned to every thread. All threads must call it.
__device__ __forceinline__ double ubd_block_sum(double v) {
    __shared__ double sh[32];
    const int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
    v = ubd_warp_sum(v);
    __syncthreads();  // a previous call's readers are done with sh
    if (lane == 0) sh[w] = v;
    __syncthreads();
    if (w == 0) {
        v = (lane < (int)(blockDim.x >> 5)) ? sh[lane] : 0.0;
        v = ubd_warp_sum(v);
        if (lane == 0) sh[0] = v;
    }
    __syncthreads();
    return sh[0];
}

#endif
