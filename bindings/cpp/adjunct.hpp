// adjunct.hpp: header-only C++17 wrapper over the adjunct C ABI (adjunct.h).
//
// - Move-only RAII classes own every handle (Operator, Preconditioner).
// - Failures throw adjunct::Error carrying the adj_status and
//   adj_last_error_message().
// - Callbacks (matrix-free operators, preconditioners) accept any callable
//   void(const double *x, double *y, std::size_t n); Jacobian products of
//   root problems any callable void(const double *v, std::size_t v_len,
//   double *y, std::size_t y_len). An exception thrown
//   inside one is caught in the trampoline, reported to the library as a
//   callback error (the solve stops), and rethrown to the caller when the
//   solve returns. Callbacks run on the thread that called the solver.
// - Array arguments are adjunct::In<T> (read) and adjunct::InOut<T>
//   (written) views: pass a std::vector, a std::span (C++20, when the
//   standard library has it) or {pointer, size}; nothing is copied.
// - Options: adjunct::CgOptions, CdmOptions, OtOptions, ImplicitOptions and
//   GridOptions start from the library's defaults and have a named setter
//   per field (adjunct::CgOptions().rtol(1e-10).max_iterations(500)); each
//   converts to the C struct every function takes.
#ifndef ADJUNCT_HPP
#define ADJUNCT_HPP

#include "adjunct.h"

#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <initializer_list>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#if defined(__has_include)
#if __has_include(<version>)
#include <version>
#endif
#endif
#if defined(__cpp_lib_span)
#include <span>
#endif

namespace adjunct {

/// A failed call: the status code and the library's message.
class Error : public std::runtime_error {
public:
    Error(adj_status status, const std::string &message) : std::runtime_error(message), status_(status) {}
    adj_status status() const noexcept { return status_; }

private:
    adj_status status_;
};

/// A solve that ran and failed (iteration limit, breakdown, indefinite
/// operator or preconditioner, NaN, callback error): the Error plus the
/// report the library filled in (iterations, residuals, reason).
class SolveError : public Error {
public:
    SolveError(adj_status status, const std::string &message, const adj_solve_report &report)
        : Error(status, message), report_(report) {}
    const adj_solve_report &report() const noexcept { return report_; }

private:
    adj_solve_report report_;
};

/// The loaded library's version, "MAJOR.MINOR.PATCH".
inline std::string version() { return adj_version(); }

/// Sets the number of worker threads (0 = one per core).
inline void set_num_threads(std::size_t n);

namespace detail {

inline void check(adj_status status) {
    if (status != ADJ_OK) throw Error(status, adj_last_error_message());
}

/// A C struct initialised by its adj_<struct>_init with this header's size
/// (every options, report and result struct carries its size, so that a
/// program built against this header works with later libraries).
template <class T>
inline T init(adj_status (*init_fn)(T *, std::size_t)) {
    T value{};
    check(init_fn(&value, sizeof value));
    return value;
}

/// A report to pass to a solver, marked so that `check_solve` can tell
/// whether the solver wrote it (it does when the iteration ran).
inline adj_solve_report fresh_report() {
    adj_solve_report report = init(adj_solve_report_init);
    report.reason = static_cast<adj_solve_reason>(0);  // not a reason the library writes
    return report;
}

/// Throws SolveError (with the report) when the solve ran and failed,
/// Error when it failed before iterating.
inline void check_solve(adj_status status, const adj_solve_report &report) {
    if (status == ADJ_OK) return;
    if (static_cast<int>(report.reason) != 0) throw SolveError(status, adj_last_error_message(), report);
    throw Error(status, adj_last_error_message());
}

template <class T, void (*Free)(T *)>
struct Deleter {
    void operator()(T *p) const noexcept { Free(p); }
};

/// The one way a C++ callable reaches the library: the object behind a
/// callback's ctx derives from this; `run` calls the callable, keeps an
/// exception it throws (the library sees -1: ADJ_ERR_CALLBACK) and
/// `rethrow_if_failed` throws it once the library call has returned.
struct ExceptionSlot {
    std::exception_ptr error;

    template <class F>
    int run(F &&f) noexcept {
        try {
            f();
            return 0;
        } catch (...) {
            error = std::current_exception();
            return -1;
        }
    }

    /// Rethrows (once) an exception a callback threw during the last call.
    void rethrow_if_failed() {
        if (error) {
            std::exception_ptr e = std::exchange(error, nullptr);
            std::rethrow_exception(e);
        }
    }
};

/// A callable given to the library as adj_apply_fn + ctx.
struct Callback : ExceptionSlot {
    std::function<void(const double *, double *, std::size_t)> fn;

    static int trampoline(void *ctx, const double *x, double *y, std::size_t n) noexcept {
        auto *self = static_cast<Callback *>(ctx);
        return self->run([&] { self->fn(x, y, n); });
    }
};

template <class F>
std::unique_ptr<Callback> make_callback(F &&f) {
    auto cb = std::make_unique<Callback>();
    cb->fn = std::forward<F>(f);
    return cb;
}

inline void require_size(std::size_t got, std::size_t expected, const char *what) {
    if (got != expected)
        throw Error(ADJ_ERR_DIMENSION_MISMATCH, std::string("dimension mismatch for `") + what + "`: expected length " +
                                                    std::to_string(expected) + ", found " + std::to_string(got));
}

/// The CSR arrays' lengths: n_rows + 1 row pointers, and as many column
/// indices and values as the last row pointer says (the library reads
/// that many).
template <class Index>
void require_csr(std::size_t n_rows, const Index *row_ptr, std::size_t row_ptr_size, std::size_t col_idx_size,
                 std::size_t values_size) {
    require_size(row_ptr_size, n_rows + 1, "row_ptr");
    const Index nnz = row_ptr[n_rows];
    if (nnz < 0) throw Error(ADJ_ERR_INVALID_ARGUMENT, "row_ptr[n_rows] is negative");
    require_size(col_idx_size, static_cast<std::size_t>(nnz), "col_idx");
    require_size(values_size, static_cast<std::size_t>(nnz), "values");
}

}  // namespace detail

/// A read-only array argument: a std::vector, a std::span or pointer + size
/// (a view: nothing is copied; valid for the call).
template <class T>
class In {
public:
    In() noexcept = default;
    In(const T *data, std::size_t size) noexcept : data_(data), size_(size) {}
    In(const std::vector<T> &v) noexcept : data_(v.data()), size_(v.size()) {}  // NOLINT: implicit by design
    /// A braced list, e.g. {h, h, h}: its array lives until the end of the
    /// call it is passed to, which is all a view needs.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Winit-list-lifetime"
#endif
    In(std::initializer_list<T> list) noexcept : data_(list.begin()), size_(list.size()) {}  // NOLINT
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
#if defined(__cpp_lib_span)
    In(std::span<const T> s) noexcept : data_(s.data()), size_(s.size()) {}  // NOLINT
    In(std::span<T> s) noexcept : data_(s.data()), size_(s.size()) {}        // NOLINT
#endif
    const T *data() const noexcept { return data_; }
    std::size_t size() const noexcept { return size_; }
    bool empty() const noexcept { return size_ == 0; }
    const T *begin() const noexcept { return data_; }
    const T *end() const noexcept { return data_ + size_; }

private:
    const T *data_ = nullptr;
    std::size_t size_ = 0;
};

/// A written (or read and written) array argument: a std::vector, a
/// std::span or pointer + size, of the exact length the function needs.
template <class T>
class InOut {
public:
    InOut(T *data, std::size_t size) noexcept : data_(data), size_(size) {}
    InOut(std::vector<T> &v) noexcept : data_(v.data()), size_(v.size()) {}  // NOLINT: implicit by design
#if defined(__cpp_lib_span)
    InOut(std::span<T> s) noexcept : data_(s.data()), size_(s.size()) {}  // NOLINT
#endif
    T *data() const noexcept { return data_; }
    std::size_t size() const noexcept { return size_; }

private:
    T *data_;
    std::size_t size_;
};

namespace detail {

/// The options struct C with the library's defaults (its init function),
/// converting to the C struct; the classes below add the named setters.
template <class C, adj_status (*Init)(C *, std::size_t)>
class Options {
public:
    Options() : c_(init(Init)) {}
    operator const C &() const noexcept { return c_; }  // NOLINT: implicit by design
    const C *get() const noexcept { return &c_; }

protected:
    C c_;
};

}  // namespace detail

#define ADJUNCT_SETTER(Self, type, field) \
    Self &field(type value) noexcept {    \
        c_.field = value;                 \
        return *this;                     \
    }
#define ADJUNCT_FLAG(Self, field)         \
    Self &field(bool value) noexcept {    \
        c_.field = value ? 1 : 0;         \
        return *this;                     \
    }
#define ADJUNCT_KIND(Self, type, field)              \
    Self &field(type value) noexcept {               \
        c_.field = static_cast<uint32_t>(value);     \
        return *this;                                \
    }

/// adj_grid_options with named setters (see adj_grid_options).
class GridOptions : public detail::Options<adj_grid_options, adj_grid_options_init> {
public:
    ADJUNCT_SETTER(GridOptions, const double *, spacing)
    ADJUNCT_SETTER(GridOptions, const double *, face_coefficients)
    ADJUNCT_SETTER(GridOptions, double, scale)
    ADJUNCT_SETTER(GridOptions, const double *, air_level_set)
    ADJUNCT_SETTER(GridOptions, double, min_air_fraction)
    ADJUNCT_SETTER(GridOptions, uint8_t, fluid_code)
    ADJUNCT_SETTER(GridOptions, uint8_t, solid_code)
    ADJUNCT_SETTER(GridOptions, uint8_t, air_code)
};

/// adj_cg_options with named setters (see adj_cg_options).
class CgOptions : public detail::Options<adj_cg_options, adj_cg_options_init> {
public:
    ADJUNCT_SETTER(CgOptions, double, rtol)
    ADJUNCT_SETTER(CgOptions, double, atol)
    ADJUNCT_SETTER(CgOptions, std::size_t, max_iterations)
    ADJUNCT_FLAG(CgOptions, nonzero_initial_guess)
    ADJUNCT_KIND(CgOptions, adj_norm, norm)
    ADJUNCT_SETTER(CgOptions, const adj_comm *, comm)
    /// Receives ‖r‖ after each iteration, up to `history.size()` entries.
    CgOptions &residual_history(InOut<double> history) noexcept {
        c_.residual_history = history.data();
        c_.residual_history_capacity = history.size();
        return *this;
    }
};

/// adj_cdm_options with named setters (see adj_cdm_options).
class CdmOptions : public detail::Options<adj_cdm_options, adj_cdm_options_init> {
public:
    ADJUNCT_SETTER(CdmOptions, double, rtol)
    ADJUNCT_SETTER(CdmOptions, double, atol)
    ADJUNCT_SETTER(CdmOptions, std::size_t, max_iterations)
    ADJUNCT_FLAG(CdmOptions, nonzero_initial_guess)
    ADJUNCT_SETTER(CdmOptions, std::size_t, orthogonalize)
    ADJUNCT_SETTER(CdmOptions, std::size_t, true_residual_period)
    ADJUNCT_SETTER(CdmOptions, double, stall_cosine)
    ADJUNCT_SETTER(CdmOptions, int32_t, coarse_block)
    ADJUNCT_FLAG(CdmOptions, layer_by_layer)
    ADJUNCT_SETTER(CdmOptions, const adj_comm *, comm)
};

/// adj_ot_options with named setters (see adj_ot_options).
class OtOptions : public detail::Options<adj_ot_options, adj_ot_options_init> {
public:
    ADJUNCT_SETTER(OtOptions, double, eps)
    ADJUNCT_KIND(OtOptions, adj_ot_method, method)
    ADJUNCT_SETTER(OtOptions, double, tol)
    ADJUNCT_SETTER(OtOptions, std::size_t, max_sinkhorn_iterations)
    ADJUNCT_SETTER(OtOptions, std::size_t, warmup_iterations)
    ADJUNCT_SETTER(OtOptions, std::size_t, max_newton_iterations)
    ADJUNCT_SETTER(OtOptions, std::size_t, hessian_entries_per_row)
    ADJUNCT_SETTER(OtOptions, std::size_t, max_hessian_entries_per_row)
    ADJUNCT_SETTER(OtOptions, double, cg_rtol)
    ADJUNCT_SETTER(OtOptions, std::size_t, cg_max_iterations)
};

/// adj_implicit_options with named setters (see adj_implicit_options).
class ImplicitOptions : public detail::Options<adj_implicit_options, adj_implicit_options_init> {
public:
    ADJUNCT_KIND(ImplicitOptions, adj_solver, solver)
    ADJUNCT_SETTER(ImplicitOptions, std::size_t, gmres_restart)
    ADJUNCT_SETTER(ImplicitOptions, double, rtol)
    ADJUNCT_SETTER(ImplicitOptions, double, atol)
    ADJUNCT_SETTER(ImplicitOptions, std::size_t, max_iterations)
    ADJUNCT_SETTER(ImplicitOptions, double, ridge)
    ADJUNCT_SETTER(ImplicitOptions, const double *, warm_start)
    ADJUNCT_SETTER(ImplicitOptions, const adj_precond *, precond)
};

#undef ADJUNCT_SETTER
#undef ADJUNCT_FLAG
#undef ADJUNCT_KIND

inline void set_num_threads(std::size_t n) { detail::check(adj_set_num_threads(n)); }

/// Grid options with the library's defaults (see adj_grid_options): set the
/// cell codes, scale or ghost-fluid level set, then pass to Operator::grid.
inline adj_grid_options grid_options() { return detail::init(adj_grid_options_init); }

/// A square linear operator: CSR matrix, grid Poisson stencil or callback.
class Operator {
public:
    /// CSR with 32-bit indices (copied); see adj_operator_new_csr_i32.
    static Operator csr(std::size_t n_rows, std::size_t n_cols, In<int32_t> row_ptr, In<int32_t> col_idx,
                        In<double> values) {
        detail::require_csr(n_rows, row_ptr.data(), row_ptr.size(), col_idx.size(), values.size());
        adj_operator *h = nullptr;
        detail::check(adj_operator_new_csr_i32(n_rows, n_cols, row_ptr.data(), col_idx.data(), values.data(), &h));
        return Operator(h);
    }

    /// CSR with 64-bit indices (copied); see adj_operator_new_csr_i64.
    static Operator csr(std::size_t n_rows, std::size_t n_cols, In<int64_t> row_ptr, In<int64_t> col_idx,
                        In<double> values) {
        detail::require_csr(n_rows, row_ptr.data(), row_ptr.size(), col_idx.size(), values.size());
        adj_operator *h = nullptr;
        detail::check(adj_operator_new_csr_i64(n_rows, n_cols, row_ptr.data(), col_idx.data(), values.data(), &h));
        return Operator(h);
    }

    /// Grid pressure Poisson operator; `spacing` (ndim values) and
    /// `face_coefficients` (ndim·cells values) may be empty for defaults.
    /// Grid Poisson operator on `cells` (nx·ny·nz flags, read in place: a
    /// pointer, so a simulator passes its own array without a copy);
    /// `options` as adj_grid_options (NULL: defaults), e.g. the caller's cell
    /// codes, a scale dt/ρ, a ghost-fluid level set.
    static Operator grid(std::size_t nx, std::size_t ny, std::size_t nz, const uint8_t *cells,
                         const adj_grid_options *options = nullptr) {
        adj_operator *h = nullptr;
        detail::check(adj_operator_new_grid(nx, ny, nz, cells, options, &h));
        return Operator(h);
    }

    /// The grid operator from pointer + size arrays (`spacing` and
    /// `face_coefficients` may be empty: size 0, pointer ignored).
    static Operator grid_poisson(std::size_t nx, std::size_t ny, std::size_t nz, const uint8_t *cells,
                                 std::size_t num_cells, const double *spacing, std::size_t spacing_size,
                                 const double *face_coefficients, std::size_t face_coefficients_size) {
        detail::require_size(num_cells, nx * ny * nz, "cells");
        const std::size_t ndim = nz > 1 ? 3 : 2;
        if (spacing_size != 0) detail::require_size(spacing_size, ndim, "spacing");
        if (face_coefficients_size != 0)
            detail::require_size(face_coefficients_size, ndim * num_cells, "face_coefficients");
        adj_operator *h = nullptr;
        detail::check(adj_operator_new_grid_poisson(nx, ny, nz, cells, spacing_size == 0 ? nullptr : spacing,
                                                    face_coefficients_size == 0 ? nullptr : face_coefficients, &h));
        return Operator(h);
    }

    /// As above, from array views (`spacing` and `face_coefficients` may be
    /// empty for the defaults).
    static Operator grid_poisson(std::size_t nx, std::size_t ny, std::size_t nz, In<uint8_t> cells,
                                 In<double> spacing = {}, In<double> face_coefficients = {}) {
        return grid_poisson(nx, ny, nz, cells.data(), cells.size(), spacing.data(), spacing.size(),
                            face_coefficients.data(), face_coefficients.size());
    }

    /// Matrix-free operator: `apply(x, y, n)` writes y = A x.
    template <class F>
    static Operator from_callable(std::size_t n, F &&apply) {
        auto cb = detail::make_callback(std::forward<F>(apply));
        adj_operator *h = nullptr;
        detail::check(adj_operator_new_callback(n, &detail::Callback::trampoline, cb.get(), &h));
        Operator op(h);
        op.callback_ = std::move(cb);
        return op;
    }

    /// The dimension (number of unknowns).
    std::size_t dim() const {
        std::size_t n = 0;
        detail::check(adj_operator_dim(get(), &n));
        return n;
    }

    /// y = A x.
    void apply(const double *x, double *y, std::size_t n) const {
        const adj_status status = adj_operator_apply(get(), x, y, n);
        rethrow_callback_error();
        detail::check(status);
    }

    std::vector<double> apply(In<double> x) const {
        std::vector<double> y(x.size());
        apply(x.data(), y.data(), x.size());
        return y;
    }

    /// Grid operators: number of cells, and field <-> unknowns conversion.
    std::size_t num_cells() const {
        std::size_t n = 0;
        detail::check(adj_grid_num_cells(get(), &n));
        return n;
    }

    std::vector<double> gather(In<double> field) const {
        std::vector<double> unknowns(dim());
        gather(field.data(), field.size(), unknowns.data(), unknowns.size());
        return unknowns;
    }

    std::vector<double> scatter(In<double> unknowns) const {
        std::vector<double> field(num_cells());
        scatter(unknowns.data(), unknowns.size(), field.data(), field.size());
        return field;
    }

    /// In place, into the caller's buffers (no allocation per frame).
    void gather(const double *field, std::size_t num_cells, double *unknowns, std::size_t n) const {
        detail::check(adj_grid_gather(get(), field, num_cells, unknowns, n));
    }

    void scatter(const double *unknowns, std::size_t n, double *field, std::size_t num_cells) const {
        detail::check(adj_grid_scatter(get(), unknowns, n, field, num_cells));
    }

    void gather(In<double> field, InOut<double> unknowns) const {
        gather(field.data(), field.size(), unknowns.data(), unknowns.size());
    }

    void scatter(In<double> unknowns, InOut<double> field) const {
        scatter(unknowns.data(), unknowns.size(), field.data(), field.size());
    }

    const adj_operator *get() const noexcept { return handle_.get(); }

    /// Rethrows an exception thrown by this operator's callback during the last call.
    void rethrow_callback_error() const {
        if (callback_) callback_->rethrow_if_failed();
    }

private:
    explicit Operator(adj_operator *h) : handle_(h) {}
    std::unique_ptr<adj_operator, detail::Deleter<adj_operator, adj_operator_free>> handle_;
    std::unique_ptr<detail::Callback> callback_;
};

/// A preconditioner M ≈ A for CG.
class Model;

/// The preconditioner kinds of adj_precond_new, as a scoped enum.
enum class PreconditionerKind : uint32_t {
    none = ADJ_PRECOND_NONE,
    jacobi = ADJ_PRECOND_JACOBI,
    ic0 = ADJ_PRECOND_IC0,
    multigrid = ADJ_PRECOND_MULTIGRID,
};

/// What a RootProblem's products with A describe (adj_jacobian_kind), as a scoped enum.
enum class JacobianKind : uint32_t {
    general = ADJ_JACOBIAN_GENERAL,
    symmetric = ADJ_JACOBIAN_SYMMETRIC,
    fixed_point = ADJ_JACOBIAN_FIXED_POINT,
};

class Preconditioner {
public:
    /// Jacobi (ADJ_PRECOND_JACOBI) or IC(0) (ADJ_PRECOND_IC0) for a CSR or grid operator,
    /// multigrid (ADJ_PRECOND_MULTIGRID) for a grid operator.
    static Preconditioner of_kind(const Operator &op, uint32_t kind) {
        adj_precond *h = nullptr;
        detail::check(adj_precond_new(op.get(), kind, &h));
        return Preconditioner(h);
    }
    static Preconditioner of_kind(const Operator &op, PreconditionerKind kind) {
        return of_kind(op, static_cast<uint32_t>(kind));
    }
    static Preconditioner jacobi(const Operator &op) { return of_kind(op, ADJ_PRECOND_JACOBI); }
    static Preconditioner ic0(const Operator &op) { return of_kind(op, ADJ_PRECOND_IC0); }
    /// Geometric multigrid V-cycle (grid Poisson operators only).
    static Preconditioner multigrid(const Operator &op) { return of_kind(op, ADJ_PRECOND_MULTIGRID); }

    /// The learned multigrid V-cycle of a multigrid-schedule `model` (see Model) for a
    /// grid operator; throws Error (ADJ_ERR_FORMAT for a direction network or the other
    /// dimension).
    static Preconditioner learned_multigrid(const Operator &op, const Model &model);

    /// Jacobi from an explicit positive diagonal.
    static Preconditioner jacobi(In<double> diagonal) {
        adj_precond *h = nullptr;
        detail::check(adj_precond_new_jacobi(diagonal.data(), diagonal.size(), &h));
        return Preconditioner(h);
    }

    /// User preconditioner: `apply(r, z, n)` writes z = M⁻¹ r.
    template <class F>
    static Preconditioner from_callable(std::size_t n, F &&apply) {
        auto cb = detail::make_callback(std::forward<F>(apply));
        adj_precond *h = nullptr;
        detail::check(adj_precond_new_callback(n, &detail::Callback::trampoline, cb.get(), &h));
        Preconditioner pc(h);
        pc.callback_ = std::move(cb);
        return pc;
    }

    const adj_precond *get() const noexcept { return handle_.get(); }

    void rethrow_callback_error() const {
        if (callback_) callback_->rethrow_if_failed();
    }

private:
    explicit Preconditioner(adj_precond *h) : handle_(h) {}
    std::unique_ptr<adj_precond, detail::Deleter<adj_precond, adj_precond_free>> handle_;
    std::unique_ptr<detail::Callback> callback_;
};

/// CG options with the library's defaults (rtol 1e-8, atol 0, 10000 iterations).
inline adj_cg_options cg_options() { return detail::init(adj_cg_options_init); }

/// Solves A x = b by preconditioned CG (`precond` may be nullptr). Throws
/// adjunct::SolveError (an adjunct::Error with the report: iterations,
/// residuals, reason) when the iteration ran and failed, adjunct::Error
/// when the arguments were rejected (x unchanged either way), or rethrows
/// an exception thrown by a callback. Returns the report.
inline adj_solve_report cg(const Operator &op, const Preconditioner *precond, const double *b, double *x, std::size_t n,
                           const adj_cg_options &options = cg_options()) {
    adj_solve_report report = detail::fresh_report();
    const adj_status status = adj_cg_solve(op.get(), precond ? precond->get() : nullptr, b, x, n, &options, &report);
    op.rethrow_callback_error();
    if (precond) precond->rethrow_callback_error();
    detail::check_solve(status, report);
    return report;
}

inline adj_solve_report cg(const Operator &op, const Preconditioner *precond, In<double> b, InOut<double> x,
                           const adj_cg_options &options = cg_options()) {
    detail::require_size(x.size(), b.size(), "x");
    return cg(op, precond, b.data(), x.data(), b.size(), options);
}

/// A persistent pressure solver for a simulator's per-frame projection:
/// created once for the grid size; `update` gives it each frame's cells
/// (read in place; `options` for codes, spacing, scale, level set) and
/// rebuilds the multigrid hierarchy; `solve` runs multigrid-PCG from the
/// last pressure on per-cell fields of double or float, without copies.
class PressureSolver {
public:
    PressureSolver(std::size_t nx, std::size_t ny, std::size_t nz = 1) : num_cells_(nx * ny * nz) {
        adj_pressure_solver *h = nullptr;
        detail::check(adj_pressure_solver_new(nx, ny, nz, &h));
        handle_.reset(h);
    }

    void update(const uint8_t *cells, const adj_grid_options *options = nullptr) {
        detail::check(adj_pressure_solver_update(handle_.get(), cells, options));
    }

    /// Wall time of the last update (the hierarchy), in seconds.
    double setup_seconds() const {
        double t = 0.0;
        detail::check(adj_pressure_solver_setup_seconds(handle_.get(), &t));
        return t;
    }

    /// A p = rhs for the frame (nx·ny·nz values each); throws SolveError
    /// with the report when the solve fails.
    adj_solve_report solve(const double *rhs, double *pressure, bool warm_start = true,
                           const adj_cg_options &options = cg_options()) {
        adj_solve_report report = detail::fresh_report();
        detail::check_solve(adj_pressure_solver_solve(handle_.get(), rhs, pressure, num_cells_, warm_start ? 1 : 0,
                                                      &options, &report),
                            report);
        return report;
    }

    /// As above on float fields (the solve runs in double).
    adj_solve_report solve(const float *rhs, float *pressure, bool warm_start = true,
                           const adj_cg_options &options = cg_options()) {
        adj_solve_report report = detail::fresh_report();
        detail::check_solve(adj_pressure_solver_solve_f32(handle_.get(), rhs, pressure, num_cells_,
                                                          warm_start ? 1 : 0, &options, &report),
                            report);
        return report;
    }

private:
    std::size_t num_cells_;
    std::unique_ptr<adj_pressure_solver, detail::Deleter<adj_pressure_solver, adj_pressure_solver_free>> handle_;
};

/// This rank's part of multigrid-PCG on a grid split into one box per
/// MPI rank (a Cartesian decomposition): the library's distributed grid
/// operator and V-cycle, with the caller's MPI reached through two
/// callables: `allreduce(buf, n)` sums n doubles over all ranks in place
/// (MPI_Allreduce with MPI_IN_PLACE), `exchange(messages, count)` moves
/// the adj_halo_message buffers (MPI_Irecv and MPI_Isend to the rank at
/// each message's offset, MPI_Waitall). Construction and solve are
/// collective. An exception a callable throws is rethrown on its rank
/// after the call (it must have finished its communication); the other
/// ranks throw Error (ADJ_ERR_CALLBACK).
class DistributedPressureSolver {
public:
    using Allreduce = std::function<void(double *, std::size_t)>;
    using Exchange = std::function<void(adj_halo_message *, std::size_t)>;

    /// The grid of nx × ny × nz cells; this rank owns the cells
    /// [lo[a], hi[a]) and passes their flags (x fastest), with `options`
    /// over its box as for adj_distributed_pressure_solver_new.
    DistributedPressureSolver(std::size_t rank, std::size_t size, Allreduce allreduce, Exchange exchange,
                              std::size_t nx, std::size_t ny, std::size_t nz, const std::size_t lo[3],
                              const std::size_t hi[3], const uint8_t *cells,
                              const adj_grid_options *options = nullptr)
        : comm_(new Comm{{}, std::move(allreduce), std::move(exchange)}),
          num_cells_((hi[0] - lo[0]) * (hi[1] - lo[1]) * (hi[2] - lo[2])) {
        adj_comm c;
        adj_comm_init(&c, sizeof c);
        c.ctx = comm_.get();
        c.rank = rank;
        c.size = size;
        c.allreduce_sum = &Comm::allreduce_call;
        c.exchange = &Comm::exchange_call;
        adj_distributed_pressure_solver *h = nullptr;
        const adj_status status = adj_distributed_pressure_solver_new(&c, nx, ny, nz, lo, hi, cells, options, &h);
        comm_->rethrow_if_failed();
        detail::check(status);
        handle_.reset(h);
    }

    /// The next frame: this rank's new cell flags (and options, with the
    /// same spacing and scale); every rank keeps its frame on failure.
    void update(const uint8_t *cells, const adj_grid_options *options = nullptr) {
        const adj_status status = adj_distributed_pressure_solver_update(handle_.get(), cells, options);
        comm_->rethrow_if_failed();
        detail::check(status);
    }

    /// A p = rhs on this rank's box (its cell count of values each), from
    /// the last pressure when `warm_start` (else p = 0); `stats` (may be
    /// null) receives this rank's communication.
    adj_solve_report solve(const double *rhs, double *pressure, bool warm_start = false,
                           const adj_cg_options &options = cg_options(), adj_comm_stats *stats = nullptr) {
        adj_solve_report report = detail::fresh_report();
        const adj_status status = adj_distributed_pressure_solver_solve(
            handle_.get(), rhs, pressure, num_cells_, warm_start ? 1 : 0, &options, &report, stats);
        comm_->rethrow_if_failed();
        detail::check_solve(status, report);
        return report;
    }

    /// As above on float fields (the solve runs in double).
    adj_solve_report solve(const float *rhs, float *pressure, bool warm_start = false,
                           const adj_cg_options &options = cg_options(), adj_comm_stats *stats = nullptr) {
        adj_solve_report report = detail::fresh_report();
        const adj_status status = adj_distributed_pressure_solver_solve_f32(
            handle_.get(), rhs, pressure, num_cells_, warm_start ? 1 : 0, &options, &report, stats);
        comm_->rethrow_if_failed();
        detail::check_solve(status, report);
        return report;
    }

    /// The number of cells of this rank's box.
    std::size_t num_cells() const { return num_cells_; }

private:
    struct Comm : detail::ExceptionSlot {
        Allreduce allreduce;
        Exchange exchange;
        static int allreduce_call(void *ctx, double *buf, std::size_t n) noexcept {
            auto *self = static_cast<Comm *>(ctx);
            return self->run([&] { self->allreduce(buf, n); });
        }
        static int exchange_call(void *ctx, adj_halo_message *messages, std::size_t count) noexcept {
            auto *self = static_cast<Comm *>(ctx);
            return self->run([&] { self->exchange(messages, count); });
        }
    };
    std::unique_ptr<Comm> comm_;
    std::size_t num_cells_;
    std::unique_ptr<adj_distributed_pressure_solver,
                    detail::Deleter<adj_distributed_pressure_solver, adj_distributed_pressure_solver_free>>
        handle_;
};

/// Single-reduction CG on this rank's part of a distributed problem:
/// `allreduce(buf, n)` must replace the n doubles of buf by their sums over
/// all ranks (e.g. MPI_Allreduce with MPI_IN_PLACE); it is called once per
/// iteration. Any callable; an exception it throws is rethrown after the
/// solve (the library reports a callback error on every rank).
template <class F>
inline adj_solve_report cg_distributed(const Operator &op, const Preconditioner *precond, In<double> b,
                                       InOut<double> x, F &&allreduce,
                                       const adj_cg_options &options = cg_options()) {
    detail::require_size(x.size(), b.size(), "x");
    struct Reduction : detail::ExceptionSlot {
        explicit Reduction(F &f) : f(f) {}
        F &f;
        static int call(void *ctx, double *buf, std::size_t n) noexcept {
            auto *self = static_cast<Reduction *>(ctx);
            return self->run([&] { self->f(buf, n); });
        }
    } reduction{allreduce};
    adj_comm comm = detail::init(adj_comm_init);
    comm.ctx = &reduction;
    comm.allreduce_sum = &Reduction::call;
    adj_cg_options distributed = options;
    distributed.comm = &comm;
    adj_solve_report report = detail::fresh_report();
    const adj_status status = adj_cg_solve(op.get(), precond ? precond->get() : nullptr, b.data(), x.data(),
                                           b.size(), &distributed, &report);
    op.rethrow_callback_error();
    if (precond) precond->rethrow_callback_error();
    reduction.rethrow_if_failed();
    detail::check_solve(status, report);
    return report;
}

/// A trained direction network for the conjugate-direction solver (DCDM
/// form, or the symmetric form D = LᵀL with which `cdm` is PCG). A model
/// whose file sets `coarse_block` (the shipped ones: 8) runs inside the
/// two-level coarse-space correction built from the operator at each solve.
/// It is evaluated with its finest level contracted into single kernels
/// where the network allows it (the same directions away from the grid's
/// edge); `adj_cdm_options::layer_by_layer = 1` evaluates it exactly as
/// trained.
class Model {
public:
    /// Loads a model file; throws Error (ADJ_ERR_IO, ADJ_ERR_FORMAT).
    static Model load(const std::string &path) {
        adj_model *h = nullptr;
        detail::check(adj_model_load(path.c_str(), &h));
        return Model(h);
    }

    /// The number of grid axes (2 or 3) the model serves.
    std::size_t ndim() const {
        std::size_t d = 0;
        detail::check(adj_model_ndim(get(), &d));
        return d;
    }

    /// Deprecated spelling of ndim() (Operator::dim() is a number of unknowns).
    [[deprecated("use ndim()")]] std::size_t dim() const { return ndim(); }

    const adj_model *get() const noexcept { return handle_.get(); }

private:
    explicit Model(adj_model *h) : handle_(h) {}
    std::unique_ptr<adj_model, detail::Deleter<adj_model, adj_model_free>> handle_;
};

inline Preconditioner Preconditioner::learned_multigrid(const Operator &op, const Model &model) {
    adj_precond *h = nullptr;
    detail::check(adj_precond_new_model(op.get(), model.get(), &h));
    return Preconditioner(h);
}

/// Conjugate-direction options with the library's defaults (k = 2).
inline adj_cdm_options cdm_options() { return detail::init(adj_cdm_options_init); }

/// What a conjugate-direction solve reports: the solve report of every
/// solver and the direction statistics.
struct CdmReport {
    adj_solve_report solve;
    adj_cdm_report cdm;
};

namespace detail {
inline CdmReport cdm(const Operator &op, const Model *model, const Preconditioner *precond, Callback *direction,
                          In<double> b, InOut<double> x, const adj_cdm_options &options) {
    require_size(x.size(), b.size(), "x");
    CdmReport report{fresh_report(), init(adj_cdm_report_init)};
    const adj_status status =
        adj_cdm_solve(op.get(), model ? model->get() : nullptr, precond ? precond->get() : nullptr,
                      direction ? &Callback::trampoline : nullptr, direction, b.data(), x.data(), b.size(), &options,
                      &report.solve, &report.cdm);
    op.rethrow_callback_error();
    if (precond) precond->rethrow_callback_error();
    if (direction) direction->rethrow_if_failed();
    check_solve(status, report.solve);
    return report;
}
}  // namespace detail

/// Conjugate-direction solve with a trained model (op: a grid operator).
inline CdmReport cdm(const Operator &op, const Model &model, In<double> b, InOut<double> x,
                          const adj_cdm_options &options = cdm_options()) {
    return detail::cdm(op, &model, nullptr, nullptr, b, x, options);
}

/// Conjugate-direction solve with D = M⁻¹ (a flexible PCG).
inline CdmReport cdm(const Operator &op, const Preconditioner &precond, In<double> b, InOut<double> x,
                          const adj_cdm_options &options = cdm_options()) {
    return detail::cdm(op, nullptr, &precond, nullptr, b, x, options);
}

/// Conjugate-direction solve with directions from any callable
/// `direction(r, d, n)` (e.g. the host's own network).
template <class F>
inline CdmReport cdm_with(const Operator &op, F &&direction, In<double> b, InOut<double> x,
                               const adj_cdm_options &options = cdm_options()) {
    auto cb = detail::make_callback(std::forward<F>(direction));
    return detail::cdm(op, nullptr, nullptr, cb.get(), b, x, options);
}

/// Entropic OT options with the library's defaults.
inline adj_ot_options ot_options() { return detail::init(adj_ot_options_init); }

/// A solved entropic OT problem.
struct OtSolution {
    std::vector<double> f, g;
    std::vector<double> plan;  // n·m row-major, empty unless requested
    adj_ot_result result = detail::init(adj_ot_result_init);
};

/// Row-major n×m cost C_ij = ‖x_i − y_j‖² for points x (n·d) and y (m·d).
inline std::vector<double> cost_sqeuclidean(In<double> x, In<double> y, std::size_t d) {
    if (d == 0 || x.size() % d || y.size() % d) throw Error(ADJ_ERR_INVALID_ARGUMENT, "point arrays must be n·d and m·d long");
    std::vector<double> c((x.size() / d) * (y.size() / d));
    detail::check(adj_ot_cost_sqeuclidean(x.data(), x.size() / d, y.data(), y.size() / d, d, c.data()));
    return c;
}

/// Row-major n×m cost C_ij = Σ_k |x_ik − y_jk|^p, p ≥ 1.
inline std::vector<double> cost_pnorm(In<double> x, In<double> y, std::size_t d, double p) {
    if (d == 0 || x.size() % d || y.size() % d) throw Error(ADJ_ERR_INVALID_ARGUMENT, "point arrays must be n·d and m·d long");
    std::vector<double> c((x.size() / d) * (y.size() / d));
    detail::check(adj_ot_cost_pnorm(x.data(), x.size() / d, y.data(), y.size() / d, d, p, c.data()));
    return c;
}

/// Solves entropic OT between a (n) and b (m) for the row-major n×m cost.
inline OtSolution ot_solve(In<double> a, In<double> b, In<double> cost,
                           const adj_ot_options &options = ot_options(), bool want_plan = false) {
    detail::require_size(cost.size(), a.size() * b.size(), "cost");
    OtSolution s;
    s.f.resize(a.size());
    s.g.resize(b.size());
    if (want_plan) s.plan.resize(cost.size());
    detail::check(adj_ot_solve(a.data(), a.size(), b.data(), b.size(), cost.data(), &options, s.f.data(), s.g.data(),
                               want_plan ? s.plan.data() : nullptr, &s.result));
    return s;
}

// ------------------------------------------------------------ implicit differentiation

/// Options of the linear solve inside a VJP/JVP (GMRES(30), rtol 1e-10 by default).
inline adj_implicit_options implicit_options() { return detail::init(adj_implicit_options_init); }

/// A vector result of a gradient computation and the report of its linear solve.
struct Gradient {
    std::vector<double> value;
    adj_solve_report report = detail::fresh_report();
};

/// The Jacobians of F(x, θ) = 0 at a solution (x ∈ ℝⁿ, θ ∈ ℝᵖ) as products
/// `f(v, v_len, y, y_len)` writing y = M v: a (A = ∂F/∂x), a_t (Aᵀ), b
/// (B = ∂F/∂θ, p → n), b_t (Bᵀ, n → p). Unset products are passed as NULL.
/// `kind` is ADJ_JACOBIAN_GENERAL, _SYMMETRIC or _FIXED_POINT.
class RootProblem {
public:
    using Product = std::function<void(const double *, std::size_t, double *, std::size_t)>;

    RootProblem(std::size_t n, std::size_t p, uint32_t kind = ADJ_JACOBIAN_GENERAL) : n_(n), p_(p), kind_(kind) {}
    RootProblem(std::size_t n, std::size_t p, JacobianKind kind)
        : RootProblem(n, p, static_cast<uint32_t>(kind)) {}
    RootProblem(const RootProblem &) = delete;
    RootProblem &operator=(const RootProblem &) = delete;

    RootProblem &a(Product f) { return set(0, std::move(f)); }
    RootProblem &a_t(Product f) { return set(1, std::move(f)); }
    RootProblem &b(Product f) { return set(2, std::move(f)); }
    RootProblem &b_t(Product f) { return set(3, std::move(f)); }

    std::size_t n() const noexcept { return n_; }
    std::size_t p() const noexcept { return p_; }

    /// The C description; valid while this object lives.
    adj_root_problem c_problem() const {
        adj_root_problem c = detail::init(adj_root_problem_init);
        c.n = n_;
        c.p = p_;
        c.kind = kind_;
        c.ctx = const_cast<RootProblem *>(this);
        c.a = products_[0] ? &trampoline<0> : nullptr;
        c.a_t = products_[1] ? &trampoline<1> : nullptr;
        c.b = products_[2] ? &trampoline<2> : nullptr;
        c.b_t = products_[3] ? &trampoline<3> : nullptr;
        return c;
    }

    /// Rethrows (once) an exception a product threw during the last call.
    void rethrow_if_failed() const { failure_.rethrow_if_failed(); }

private:
    RootProblem &set(int k, Product f) {
        products_[k] = std::move(f);
        return *this;
    }

    template <int K>
    static int trampoline(void *ctx, const double *v, std::size_t v_len, double *y, std::size_t y_len) noexcept {
        auto *self = static_cast<RootProblem *>(ctx);
        return self->failure_.run([&] { self->products_[K](v, v_len, y, y_len); });
    }

    std::size_t n_, p_;
    uint32_t kind_;
    Product products_[4];
    mutable detail::ExceptionSlot failure_;
};

/// (∂x*/∂θ)ᵀ v̄ = Bᵀu with (Aᵀ + ρI) u = −v̄. Throws adjunct::SolveError
/// (with the report) when the linear solve fails, adjunct::Error when the
/// arguments are rejected, or rethrows a product's exception.
inline Gradient implicit_vjp(const RootProblem &problem, In<double> cotangent,
                             const adj_implicit_options &options = implicit_options()) {
    Gradient out;
    out.value.resize(problem.p());
    const adj_root_problem c = problem.c_problem();
    const adj_status status = adj_implicit_vjp(&c, cotangent.data(), cotangent.size(), &options, out.value.data(),
                                               out.value.size(), &out.report);
    problem.rethrow_if_failed();
    detail::check_solve(status, out.report);
    return out;
}

/// ẋ = (∂x*/∂θ) θ̇ with (A + ρI) ẋ = −B θ̇.
inline Gradient implicit_jvp(const RootProblem &problem, In<double> tangent,
                             const adj_implicit_options &options = implicit_options()) {
    Gradient out;
    out.value.resize(problem.n());
    const adj_root_problem c = problem.c_problem();
    const adj_status status = adj_implicit_jvp(&c, tangent.data(), tangent.size(), &options, out.value.data(),
                                               out.value.size(), &out.report);
    problem.rethrow_if_failed();
    detail::check_solve(status, out.report);
    return out;
}

/// Gradients of a loss through x = A⁻¹ b: ∂L/∂b and ∂L/∂A on the stored
/// entries of A (CSR order).
struct LinearSolveGradient {
    std::vector<double> b, values;
    adj_solve_report report = detail::init(adj_solve_report_init);
};

/// Options of linear_solve_vjp: CG (what SPD and grid operators need),
/// rtol 1e-10; choose ADJ_SOLVER_GMRES or _BICGSTAB for a nonsymmetric CSR matrix.
inline adj_implicit_options linear_solve_options() {
    adj_implicit_options o = detail::init(adj_implicit_options_init);
    o.solver = ADJ_SOLVER_CG;
    return o;
}

/// Gradients through x = A⁻¹ b for a CSR or grid operator, given x and
/// x̄ = ∂L/∂x; `precond` is the forward preconditioner (may be nullptr).
inline LinearSolveGradient linear_solve_vjp(const Operator &op, const Preconditioner *precond,
                                            In<double> x, In<double> x_bar,
                                            adj_implicit_options options = linear_solve_options()) {
    detail::require_size(x_bar.size(), x.size(), "x_bar");
    std::size_t nnz = 0;
    detail::check(adj_operator_csr_nnz(op.get(), &nnz));
    options.precond = precond ? precond->get() : nullptr;
    LinearSolveGradient out;
    out.b.resize(x.size());
    out.values.resize(nnz);
    detail::check(adj_linear_solve_vjp(op.get(), x.data(), x_bar.data(), x.size(), &options, out.b.data(),
                                       out.values.data(), nnz, &out.report));
    return out;
}

/// Gradients of an OT quantity wrt the cost C (n·m row-major), a and b.
struct OtGradient {
    std::vector<double> cost, a, b;
    adj_solve_report report = detail::init(adj_solve_report_init);  // of the adjoint solve (plan VJP only)
};

/// Gradient of the regularised cost ⟨C,P⟩ + ε Σ P(log P − 1) at a solution
/// of `ot_solve` with the same cost and `eps`: (P, f − mean f, g + mean f).
inline OtGradient ot_cost_gradient(In<double> cost, const OtSolution &s, double eps) {
    detail::require_size(cost.size(), s.f.size() * s.g.size(), "cost");
    OtGradient out;
    out.cost.resize(cost.size());
    out.a.resize(s.f.size());
    out.b.resize(s.g.size());
    detail::check(adj_ot_cost_gradient(cost.data(), s.f.size(), s.g.size(), eps, s.f.data(), s.g.data(),
                                       out.cost.data(), out.a.data(), out.b.data()));
    return out;
}

/// Options of the OT derivatives (the options of every implicit-differentiation
/// entry point): CG on the dual Hessian's Schur system, rtol 1e-10.
inline adj_implicit_options ot_derivative_options() { return linear_solve_options(); }

/// Gradients of ⟨P̄, P⟩ wrt C, a and b (one CG solve with the dual Hessian).
inline OtGradient ot_plan_vjp(In<double> cost, const OtSolution &s, double eps, In<double> plan_bar,
                              const adj_implicit_options &options = ot_derivative_options()) {
    detail::require_size(cost.size(), s.f.size() * s.g.size(), "cost");
    detail::require_size(plan_bar.size(), cost.size(), "plan_bar");
    OtGradient out;
    out.cost.resize(cost.size());
    out.a.resize(s.f.size());
    out.b.resize(s.g.size());
    detail::check(adj_ot_implicit_vjp(cost.data(), s.f.size(), s.g.size(), eps, s.f.data(), s.g.data(),
                                      plan_bar.data(), &options, out.cost.data(), out.a.data(), out.b.data(),
                                      &out.report));
    return out;
}

/// The plan's derivative Ṗ along tangents Ċ, ȧ, ḃ (Σȧ = Σḃ).
inline Gradient ot_plan_jvp(In<double> cost, const OtSolution &s, double eps, In<double> cost_dot,
                            In<double> a_dot, In<double> b_dot,
                            const adj_implicit_options &options = ot_derivative_options()) {
    detail::require_size(cost.size(), s.f.size() * s.g.size(), "cost");
    detail::require_size(cost_dot.size(), cost.size(), "cost_dot");
    detail::require_size(a_dot.size(), s.f.size(), "a_dot");
    detail::require_size(b_dot.size(), s.g.size(), "b_dot");
    Gradient out;
    out.value.resize(cost.size());
    detail::check(adj_ot_implicit_jvp(cost.data(), s.f.size(), s.g.size(), eps, s.f.data(), s.g.data(),
                                      cost_dot.data(), a_dot.data(), b_dot.data(), &options, out.value.data(),
                                      &out.report));
    return out;
}

}  // namespace adjunct

#endif  // ADJUNCT_HPP
