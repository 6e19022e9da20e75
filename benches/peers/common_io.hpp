// Reads the CSR problems written by examples/bench_peers.rs (little-endian):
// DIR/meta.txt ("n nnz"), DIR/row_ptr.i64 (n+1), DIR/col_idx.i64 (nnz),
// DIR/values.f64 (nnz), DIR/rhs.f64 (n). Shared by the C/C++ peer programs.
#ifndef ADJUNCT_PEERS_COMMON_IO_HPP
#define ADJUNCT_PEERS_COMMON_IO_HPP

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

struct CsrProblem {
    long long n = 0, nnz = 0;
    std::vector<int64_t> row_ptr, col_idx;
    std::vector<double> values, rhs;
};

template <class T>
static std::vector<T> read_array(const std::string &path, long long count) {
    std::vector<T> v(static_cast<std::size_t>(count));
    std::FILE *f = std::fopen(path.c_str(), "rb");
    if (!f || std::fread(v.data(), sizeof(T), v.size(), f) != v.size()) {
        std::fprintf(stderr, "cannot read %s\n", path.c_str());
        std::exit(2);
    }
    std::fclose(f);
    return v;
}

static CsrProblem read_problem(const std::string &dir) {
    CsrProblem p;
    std::FILE *meta = std::fopen((dir + "/meta.txt").c_str(), "r");
    if (!meta || std::fscanf(meta, "%lld %lld", &p.n, &p.nnz) != 2) {
        std::fprintf(stderr, "cannot read %s/meta.txt\n", dir.c_str());
        std::exit(2);
    }
    std::fclose(meta);
    p.row_ptr = read_array<int64_t>(dir + "/row_ptr.i64", p.n + 1);
    p.col_idx = read_array<int64_t>(dir + "/col_idx.i64", p.nnz);
    p.values = read_array<double>(dir + "/values.f64", p.nnz);
    p.rhs = read_array<double>(dir + "/rhs.f64", p.n);
    return p;
}

// ‖b − A x‖₂ / ‖b‖₂ with the CSR arrays.
static double true_relative_residual(const CsrProblem &p, const double *x) {
    double rr = 0.0, bb = 0.0;
    for (long long i = 0; i < p.n; ++i) {
        double ax = 0.0;
        for (int64_t k = p.row_ptr[i]; k < p.row_ptr[i + 1]; ++k) ax += p.values[k] * x[p.col_idx[k]];
        const double r = p.rhs[i] - ax;
        rr += r * r;
        bb += p.rhs[i] * p.rhs[i];
    }
    return bb > 0 ? std::sqrt(rr / bb) : 0.0;
}

#endif
