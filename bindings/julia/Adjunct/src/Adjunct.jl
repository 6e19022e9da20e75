"""
    Adjunct

Julia bindings of the adjunct C library: preconditioned conjugate gradient
on sparse matrices, fluid-pressure grid stencils and Julia functions, and
entropic optimal transport (Sinkhorn, Sinkhorn-Newton-Sparse).

The shared library is `ENV["ADJUNCT_LIB"]` (a path to `libadjunct.so`), or
`lib/libadjunct.so` under `ENV["ADJUNCT_PREFIX"]` (default `/usr/local`, the
layout of `bindings/install.sh PREFIX`). Callbacks (Julia functions used as
operators or preconditioners) are invoked only on the calling thread.
"""
module Adjunct

using Libdl
using SparseArrays

export AdjunctError, Operator, Preconditioner
export csr_operator, grid_poisson, callback_operator, jacobi_preconditioner, callback_preconditioner
export cg, apply, dim, num_cells, gather, scatter, to_csr
export sinkhorn, cost_sqeuclidean, cost_pnorm
export CELL_FLUID, CELL_SOLID, CELL_AIR

# ---------------------------------------------------------------- library

const _libpath = Ref{String}("")

"""Path of the adjunct shared library (resolved on first use)."""
function libadjunct()
    isempty(_libpath[]) || return _libpath[]
    if haskey(ENV, "ADJUNCT_LIB")
        path = ENV["ADJUNCT_LIB"]
        isfile(path) || error("ENV[\"ADJUNCT_LIB\"] = \"$path\" is not a file")
        return _libpath[] = path
    end
    prefix = get(ENV, "ADJUNCT_PREFIX", "/usr/local")
    for dir in ("lib", "lib64"), name in ("libadjunct.so", "libadjunct.dylib")
        path = joinpath(prefix, dir, name)
        isfile(path) && return _libpath[] = path
    end
    error("the adjunct shared library was not found: set ENV[\"ADJUNCT_LIB\"] to libadjunct.so " *
          "(e.g. target/release/libadjunct.so after `cargo build --release`) or ENV[\"ADJUNCT_PREFIX\"] " *
          "to an install prefix (bindings/install.sh PREFIX); looked in $prefix/lib")
end

# ---------------------------------------------------------------- errors

const ADJ_OK = Cint(0)
const ADJ_ERR_NULL_ARGUMENT = Cint(-1)
const ADJ_ERR_INVALID_ARGUMENT = Cint(-2)
const ADJ_ERR_DIMENSION_MISMATCH = Cint(-3)
const ADJ_ERR_NOT_SPD = Cint(-4)
const ADJ_ERR_NOT_CONVERGED = Cint(-5)
const ADJ_ERR_CALLBACK = Cint(-6)
const ADJ_ERR_PANIC = Cint(-7)

"""A failed library call: the `adj_status` code and the library's message."""
struct AdjunctError <: Exception
    status::Cint
    message::String
end

Base.showerror(io::IO, e::AdjunctError) = print(io, "AdjunctError(status ", e.status, "): ", e.message)

function last_error_message()
    return unsafe_string(ccall((:adj_last_error_message, libadjunct()), Cstring, ()))
end

function _check(status::Cint)
    status == ADJ_OK || throw(AdjunctError(status, last_error_message()))
    return nothing
end

"""The loaded library's version, e.g. `v"0.1.0"`."""
version() = VersionNumber(unsafe_string(ccall((:adj_version, libadjunct()), Cstring, ())))

"""Sets the number of worker threads of the library's kernels (0 = one per core)."""
set_num_threads(n::Integer) = _check(ccall((:adj_set_num_threads, libadjunct()), Cint, (Csize_t,), n))

"""The number of worker threads the library's kernels use."""
num_threads() = Int(ccall((:adj_get_num_threads, libadjunct()), Csize_t, ()))

# ---------------------------------------------------------------- callbacks

mutable struct _Callback
    f::Any        # f(y, x) writes y
    error::Any    # an exception thrown by f, rethrown after the call
end

function _trampoline(ctx::Ptr{Cvoid}, x::Ptr{Cdouble}, y::Ptr{Cdouble}, n::Csize_t)::Cint
    cb = unsafe_pointer_to_objref(ctx)::_Callback
    try
        cb.f(unsafe_wrap(Array, y, Int(n)), unsafe_wrap(Array, x, Int(n)))
        return Cint(0)
    catch e
        cb.error = CapturedException(e, catch_backtrace())
        return Cint(1)
    end
end

const _TRAMPOLINE = Ref{Ptr{Cvoid}}(C_NULL)

function __init__()
    _TRAMPOLINE[] = @cfunction(_trampoline, Cint, (Ptr{Cvoid}, Ptr{Cdouble}, Ptr{Cdouble}, Csize_t))
end

function _rethrow(cb::Union{Nothing,_Callback})
    if cb !== nothing && cb.error !== nothing
        e = cb.error
        cb.error = nothing
        throw(e)
    end
end

# ---------------------------------------------------------------- operators

const CELL_FLUID = UInt8(0)
const CELL_SOLID = UInt8(1)
const CELL_AIR = UInt8(2)

"""A square linear operator owned by the library (freed by a finalizer)."""
mutable struct Operator
    ptr::Ptr{Cvoid}
    callback::Union{Nothing,_Callback}
    function Operator(ptr::Ptr{Cvoid}, callback::Union{Nothing,_Callback}=nothing)
        op = new(ptr, callback)
        finalizer(op) do o
            if o.ptr != C_NULL
                ccall((:adj_operator_free, libadjunct()), Cvoid, (Ptr{Cvoid},), o.ptr)
                o.ptr = C_NULL
            end
        end
        return op
    end
end

"""
    csr_operator(A::SparseMatrixCSC)

The operator of a square sparse matrix (converted to CSR, 64-bit indices).
"""
function csr_operator(A::SparseMatrixCSC)
    m, n = size(A)
    At = sparse(transpose(A))  # the CSC arrays of Aᵀ are the CSR arrays of A
    row_ptr = Int64.(At.colptr) .- 1
    col_idx = Int64.(At.rowval) .- 1
    values = Vector{Float64}(At.nzval)
    out = Ref{Ptr{Cvoid}}(C_NULL)
    _check(ccall((:adj_operator_new_csr_i64, libadjunct()), Cint,
                 (Csize_t, Csize_t, Ptr{Int64}, Ptr{Int64}, Ptr{Cdouble}, Ref{Ptr{Cvoid}}),
                 m, n, row_ptr, col_idx, values, out))
    return Operator(out[])
end

"""
    csr_operator(n_rows, n_cols, row_ptr::Vector{Int32}, col_idx::Vector{Int32}, values)

The operator of CSR arrays with 0-based 32-bit indices, as C programs pass them.
"""
function csr_operator(n_rows::Integer, n_cols::Integer, row_ptr::Vector{Int32}, col_idx::Vector{Int32},
                      values::AbstractVector{<:Real})
    length(row_ptr) == n_rows + 1 || throw(DimensionMismatch("row_ptr must have n_rows + 1 entries"))
    vals = Vector{Float64}(values)
    out = Ref{Ptr{Cvoid}}(C_NULL)
    _check(ccall((:adj_operator_new_csr_i32, libadjunct()), Cint,
                 (Csize_t, Csize_t, Ptr{Int32}, Ptr{Int32}, Ptr{Cdouble}, Ref{Ptr{Cvoid}}),
                 n_rows, n_cols, row_ptr, col_idx, vals, out))
    return Operator(out[])
end

"""
    grid_poisson(cells; spacing=nothing, face_coefficients=nothing)

The pressure Poisson operator on the grid of `cells` (an `nx×ny` or
`nx×ny×nz` array of `CELL_FLUID`, `CELL_SOLID`, `CELL_AIR`). `spacing`:
`ndim` grid spacings; `face_coefficients`: `ndim·length(cells)` values β ≥ 0
(axis-major, see the C header). Unknowns are the fluid cells in array order.
"""
function grid_poisson(cells::AbstractArray{UInt8}; spacing=nothing, face_coefficients=nothing)
    ndims(cells) in (2, 3) || throw(ArgumentError("cells must be a 2D or 3D array"))
    nx, ny, nz = size(cells, 1), size(cells, 2), size(cells, 3)
    flags = Vector{UInt8}(vec(cells))
    h = spacing === nothing ? Ptr{Cdouble}(C_NULL) : Vector{Float64}(spacing)
    beta = face_coefficients === nothing ? Ptr{Cdouble}(C_NULL) : Vector{Float64}(vec(face_coefficients))
    out = Ref{Ptr{Cvoid}}(C_NULL)
    _check(ccall((:adj_operator_new_grid_poisson, libadjunct()), Cint,
                 (Csize_t, Csize_t, Csize_t, Ptr{UInt8}, Ptr{Cdouble}, Ptr{Cdouble}, Ref{Ptr{Cvoid}}),
                 nx, ny, nz, flags, h, beta, out))
    return Operator(out[])
end

"""
    callback_operator(f!, n)

A matrix-free operator of dimension `n`: `f!(y, x)` must write `y = A*x`.
"""
function callback_operator(f!, n::Integer)
    cb = _Callback(f!, nothing)
    out = Ref{Ptr{Cvoid}}(C_NULL)
    _check(ccall((:adj_operator_new_callback, libadjunct()), Cint,
                 (Csize_t, Ptr{Cvoid}, Ptr{Cvoid}, Ref{Ptr{Cvoid}}),
                 n, _TRAMPOLINE[], pointer_from_objref(cb), out))
    return Operator(out[], cb)
end

"""The dimension (number of unknowns) of an operator."""
function dim(A::Operator)
    n = Ref{Csize_t}(0)
    _check(ccall((:adj_operator_dim, libadjunct()), Cint, (Ptr{Cvoid}, Ref{Csize_t}), A.ptr, n))
    return Int(n[])
end

"""`apply(A, x)` returns `A*x`."""
function apply(A::Operator, x::AbstractVector{<:Real})
    xx = Vector{Float64}(x)
    y = similar(xx)
    status = GC.@preserve A ccall((:adj_operator_apply, libadjunct()), Cint,
                                  (Ptr{Cvoid}, Ptr{Cdouble}, Ptr{Cdouble}, Csize_t), A.ptr, xx, y, length(xx))
    _rethrow(A.callback)
    _check(status)
    return y
end

Base.:*(A::Operator, x::AbstractVector{<:Real}) = apply(A, x)
Base.size(A::Operator) = (n = dim(A); (n, n))

"""The number of cells of a grid operator."""
function num_cells(A::Operator)
    n = Ref{Csize_t}(0)
    _check(ccall((:adj_grid_num_cells, libadjunct()), Cint, (Ptr{Cvoid}, Ref{Csize_t}), A.ptr, n))
    return Int(n[])
end

"""The fluid cells of a per-cell field, as a vector of unknowns."""
function gather(A::Operator, field::AbstractArray{<:Real})
    f = Vector{Float64}(vec(field))
    u = zeros(dim(A))
    _check(ccall((:adj_grid_gather, libadjunct()), Cint,
                 (Ptr{Cvoid}, Ptr{Cdouble}, Csize_t, Ptr{Cdouble}, Csize_t), A.ptr, f, length(f), u, length(u)))
    return u
end

"""A per-cell field (vector in cell order) from unknowns; 0 in solid and air cells."""
function scatter(A::Operator, unknowns::AbstractVector{<:Real})
    u = Vector{Float64}(unknowns)
    f = zeros(num_cells(A))
    _check(ccall((:adj_grid_scatter, libadjunct()), Cint,
                 (Ptr{Cvoid}, Ptr{Cdouble}, Csize_t, Ptr{Cdouble}, Csize_t), A.ptr, u, length(u), f, length(f)))
    return f
end

"""The matrix of a CSR or grid operator as a `SparseMatrixCSC`."""
function to_csr(A::Operator)
    n = dim(A)
    nnz = Ref{Csize_t}(0)
    _check(ccall((:adj_operator_csr_nnz, libadjunct()), Cint, (Ptr{Cvoid}, Ref{Csize_t}), A.ptr, nnz))
    row_ptr = zeros(Int64, n + 1)
    col_idx = zeros(Int64, nnz[])
    values = zeros(Float64, nnz[])
    _check(ccall((:adj_operator_to_csr_i64, libadjunct()), Cint,
                 (Ptr{Cvoid}, Ptr{Int64}, Ptr{Int64}, Ptr{Cdouble}), A.ptr, row_ptr, col_idx, values))
    # CSR arrays of A are the CSC arrays of Aᵀ.
    At = SparseMatrixCSC(n, n, row_ptr .+ 1, col_idx .+ 1, values)
    return sparse(transpose(At))
end

# ---------------------------------------------------------------- preconditioners

const ADJ_PRECOND_NONE = UInt32(0)
const ADJ_PRECOND_JACOBI = UInt32(1)
const ADJ_PRECOND_IC0 = UInt32(2)

"""A preconditioner owned by the library (freed by a finalizer)."""
mutable struct Preconditioner
    ptr::Ptr{Cvoid}
    callback::Union{Nothing,_Callback}
    function Preconditioner(ptr::Ptr{Cvoid}, callback::Union{Nothing,_Callback}=nothing)
        pc = new(ptr, callback)
        finalizer(pc) do p
            if p.ptr != C_NULL
                ccall((:adj_precond_free, libadjunct()), Cvoid, (Ptr{Cvoid},), p.ptr)
                p.ptr = C_NULL
            end
        end
        return pc
    end
end

"""`Preconditioner(A, kind)` with `kind` one of `:none`, `:jacobi`, `:ic0`."""
function Preconditioner(A::Operator, kind::Symbol)
    code = kind === :none ? ADJ_PRECOND_NONE : kind === :jacobi ? ADJ_PRECOND_JACOBI :
           kind === :ic0 ? ADJ_PRECOND_IC0 : throw(ArgumentError("unknown preconditioner $kind (:none, :jacobi, :ic0)"))
    out = Ref{Ptr{Cvoid}}(C_NULL)
    _check(ccall((:adj_precond_new, libadjunct()), Cint, (Ptr{Cvoid}, UInt32, Ref{Ptr{Cvoid}}), A.ptr, code, out))
    return Preconditioner(out[])
end

"""Jacobi preconditioner from an explicit positive diagonal."""
function jacobi_preconditioner(diagonal::AbstractVector{<:Real})
    d = Vector{Float64}(diagonal)
    out = Ref{Ptr{Cvoid}}(C_NULL)
    _check(ccall((:adj_precond_new_jacobi, libadjunct()), Cint, (Ptr{Cdouble}, Csize_t, Ref{Ptr{Cvoid}}),
                 d, length(d), out))
    return Preconditioner(out[])
end

"""A user preconditioner of dimension `n`: `f!(z, r)` must write `z = M⁻¹ r`."""
function callback_preconditioner(f!, n::Integer)
    cb = _Callback(f!, nothing)
    out = Ref{Ptr{Cvoid}}(C_NULL)
    _check(ccall((:adj_precond_new_callback, libadjunct()), Cint,
                 (Csize_t, Ptr{Cvoid}, Ptr{Cvoid}, Ref{Ptr{Cvoid}}),
                 n, _TRAMPOLINE[], pointer_from_objref(cb), out))
    return Preconditioner(out[], cb)
end

# ---------------------------------------------------------------- CG

"""Mirror of `adj_cg_options`."""
struct CgOptions
    rtol::Cdouble
    atol::Cdouble
    max_iterations::Csize_t
    nonzero_initial_guess::Int32
    residual_history::Ptr{Cdouble}
    residual_history_capacity::Csize_t
end

"""Mirror of `adj_solve_report`."""
struct SolveReport
    iterations::Csize_t
    residual_norm::Cdouble
    true_residual_norm::Cdouble
    relative_residual::Cdouble
    initial_residual_norm::Cdouble
    reason::Cint
    residual_history_length::Csize_t
end

cg_options_default() = ccall((:adj_cg_options_default, libadjunct()), CgOptions, ())

"""
    x, report = cg(A, b; rtol=1e-8, atol=0.0, maxiter=10_000, precond=nothing, x0=nothing, history=false)

Solves `A x = b` (A symmetric positive definite: an `Operator` or a
`SparseMatrixCSC`) by preconditioned conjugate gradient to
‖b − A x‖ ≤ max(rtol‖b‖, atol). `precond` is `nothing`, a `Preconditioner`,
or one of `:jacobi`, `:ic0`. Throws `AdjunctError` when the solve fails (or
rethrows an exception thrown by a Julia callback).
"""
function cg(A::Operator, b::AbstractVector{<:Real}; rtol::Real=1e-8, atol::Real=0.0, maxiter::Integer=10_000,
            precond=nothing, x0=nothing, history::Bool=false)
    pc = precond isa Symbol ? Preconditioner(A, precond) : precond
    bb = Vector{Float64}(b)
    x = x0 === nothing ? zeros(length(bb)) : Vector{Float64}(x0)
    hist = history ? zeros(Float64, maxiter) : Float64[]
    report = Ref{SolveReport}()
    pc_ptr = pc === nothing ? C_NULL : pc.ptr
    status = GC.@preserve A pc hist begin
        options = CgOptions(rtol, atol, maxiter, x0 === nothing ? 0 : 1,
                            history ? pointer(hist) : Ptr{Cdouble}(C_NULL), length(hist))
        ccall((:adj_cg_solve, libadjunct()), Cint,
              (Ptr{Cvoid}, Ptr{Cvoid}, Ptr{Cdouble}, Ptr{Cdouble}, Csize_t, Ref{CgOptions}, Ref{SolveReport}),
              A.ptr, pc_ptr, bb, x, length(bb), options, report)
    end
    _rethrow(A.callback)
    pc === nothing || _rethrow(pc.callback)
    _check(status)
    r = report[]
    return x, (iterations=Int(r.iterations), residual_norm=r.residual_norm,
               true_residual_norm=r.true_residual_norm, relative_residual=r.relative_residual,
               initial_residual_norm=r.initial_residual_norm, reason=Int(r.reason),
               history=hist[1:Int(r.residual_history_length)])
end

cg(A::SparseMatrixCSC, b::AbstractVector{<:Real}; kwargs...) = cg(csr_operator(A), b; kwargs...)

# ---------------------------------------------------------------- optimal transport

"""Mirror of `adj_ot_options`."""
struct OtOptions
    eps::Cdouble
    method::UInt32
    tol::Cdouble
    max_sinkhorn_iterations::Csize_t
    warmup_iterations::Csize_t
    max_newton_iterations::Csize_t
    hessian_entries_per_row::Csize_t
    max_hessian_entries_per_row::Csize_t
    cg_rtol::Cdouble
    cg_max_iterations::Csize_t
end

"""Mirror of `adj_ot_result`."""
struct OtResult
    transport_cost::Cdouble
    objective::Cdouble
    marginal_error::Cdouble
    sinkhorn_iterations::Csize_t
    newton_iterations::Csize_t
    cg_iterations::Csize_t
    fallbacks::Csize_t
    hessian_entries_per_row::Csize_t
end

ot_options_default() = ccall((:adj_ot_options_default, libadjunct()), OtOptions, ())

"""
    cost_sqeuclidean(X, Y)

The n×m cost C[i,j] = ‖X[:,i] − Y[:,j]‖² for points as columns of X (d×n) and Y (d×m).
"""
function cost_sqeuclidean(X::AbstractMatrix{<:Real}, Y::AbstractMatrix{<:Real})
    size(X, 1) == size(Y, 1) || throw(DimensionMismatch("X and Y must have the same number of rows (dimension)"))
    d, n, m = size(X, 1), size(X, 2), size(Y, 2)
    x, y = Matrix{Float64}(X), Matrix{Float64}(Y)
    C = Matrix{Float64}(undef, m, n)  # row-major n×m
    _check(ccall((:adj_ot_cost_sqeuclidean, libadjunct()), Cint,
                 (Ptr{Cdouble}, Csize_t, Ptr{Cdouble}, Csize_t, Csize_t, Ptr{Cdouble}), x, n, y, m, d, C))
    return permutedims(C)
end

"""
    cost_pnorm(X, Y, p)

The n×m cost C[i,j] = Σ_k |X[k,i] − Y[k,j]|^p (p ≥ 1; p = 1 is the L1 distance).
"""
function cost_pnorm(X::AbstractMatrix{<:Real}, Y::AbstractMatrix{<:Real}, p::Real)
    size(X, 1) == size(Y, 1) || throw(DimensionMismatch("X and Y must have the same number of rows (dimension)"))
    d, n, m = size(X, 1), size(X, 2), size(Y, 2)
    x, y = Matrix{Float64}(X), Matrix{Float64}(Y)
    C = Matrix{Float64}(undef, m, n)
    _check(ccall((:adj_ot_cost_pnorm, libadjunct()), Cint,
                 (Ptr{Cdouble}, Csize_t, Ptr{Cdouble}, Csize_t, Csize_t, Cdouble, Ptr{Cdouble}), x, n, y, m, d, p, C))
    return permutedims(C)
end

"""
    sinkhorn(a, b, C; eps, method=:sns, tol=1e-9, plan=true)

Entropic OT between histograms `a` (n) and `b` (m) for the n×m cost `C`:
min ⟨C,P⟩ + eps Σ P(log P − 1) subject to P1 = a, Pᵀ1 = b, with `eps` in
the units of C. `method` is `:sns` (Sinkhorn-Newton-Sparse) or `:sinkhorn`.
Returns `(f, g, P, info)` with P[i,j] = exp((f[i] + g[j] − C[i,j])/eps)
(`P === nothing` when `plan=false`).
"""
function sinkhorn(a::AbstractVector{<:Real}, b::AbstractVector{<:Real}, C::AbstractMatrix{<:Real};
                  eps::Real, method::Symbol=:sns, tol::Real=1e-9, plan::Bool=true)
    n, m = size(C)
    code = method === :sinkhorn ? UInt32(0) : method === :sns ? UInt32(1) :
           throw(ArgumentError("method must be :sns or :sinkhorn"))
    d = ot_options_default()
    options = OtOptions(eps, code, tol, d.max_sinkhorn_iterations, d.warmup_iterations, d.max_newton_iterations,
                        d.hessian_entries_per_row, d.max_hessian_entries_per_row, d.cg_rtol, d.cg_max_iterations)
    aa, bb = Vector{Float64}(a), Vector{Float64}(b)
    crow = permutedims(Matrix{Float64}(C))  # m×n column-major = n×m row-major
    f, g = zeros(n), zeros(m)
    P = plan ? Matrix{Float64}(undef, m, n) : nothing
    result = Ref{OtResult}()
    GC.@preserve P begin
        plan_ptr = P === nothing ? Ptr{Cdouble}(C_NULL) : pointer(P)
        _check(ccall((:adj_ot_solve, libadjunct()), Cint,
                     (Ptr{Cdouble}, Csize_t, Ptr{Cdouble}, Csize_t, Ptr{Cdouble}, Ref{OtOptions}, Ptr{Cdouble},
                      Ptr{Cdouble}, Ptr{Cdouble}, Ref{OtResult}),
                     aa, n, bb, m, crow, options, f, g, plan_ptr, result))
    end
    r = result[]
    info = (transport_cost=r.transport_cost, objective=r.objective, marginal_error=r.marginal_error,
            sinkhorn_iterations=Int(r.sinkhorn_iterations), newton_iterations=Int(r.newton_iterations),
            cg_iterations=Int(r.cg_iterations), fallbacks=Int(r.fallbacks))
    return f, g, (P === nothing ? nothing : permutedims(P)), info
end

end # module
