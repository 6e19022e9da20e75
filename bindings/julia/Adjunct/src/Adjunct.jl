"""
    Adjunct

Julia bindings of the adjunct C library: preconditioned conjugate gradient
on sparse matrices, fluid-pressure grid stencils and Julia functions, and
entropic optimal transport (Sinkhorn, Sinkhorn-Newton-Sparse), and
implicit differentiation (root problems given by Julia functions, linear
solves, optimal transport).

The shared library is, in this order: the `libadjunct` preference of this
package (Preferences.jl; `Adjunct.set_library!(path)` writes it to
`LocalPreferences.toml`, a restart applies it), `ENV["ADJUNCT_LIB"]` (a path
to `libadjunct.so`), or `lib/libadjunct.so` under `ENV["ADJUNCT_PREFIX"]`
(default `/usr/local`, the layout of `bindings/install.sh PREFIX`).
`cg`, `apply`, `dim`, `gather` and `scatter` are not exported (other
packages export those names): call them qualified, `Adjunct.cg(A, b)`. Callbacks (Julia functions used as
operators or preconditioners) are invoked only on the calling thread.
"""
module Adjunct

using Libdl
using LinearAlgebra
using Preferences
using SparseArrays

export AdjunctError, Operator, Preconditioner, status_string
export csr_operator, grid_poisson, callback_operator, jacobi_preconditioner, callback_preconditioner
# `cg`, `apply`, `dim`, `gather` and `scatter` are not exported (Krylov.jl,
# IterativeSolvers.jl, MPI.jl and others export the same names): call them
# as `Adjunct.cg`, `Adjunct.dim`, …, or use `mul!`, `size` and `ldiv!`.
export cg_distributed, num_cells, to_csr, set_library!
export sinkhorn, cost_sqeuclidean, cost_pnorm
export Model, load_model, cdm
export PressureSolver, update!, solve!, setup_seconds, scatter!
export DistributedPressureSolver
export SolveReason, converged, CONVERGED_RTOL, CONVERGED_ATOL, DIVERGED_MAX_ITERATIONS, DIVERGED_BREAKDOWN,
       DIVERGED_INDEFINITE_PRECONDITIONER, DIVERGED_NAN_OR_INF, DIVERGED_INDEFINITE_OPERATOR, DIVERGED_CALLBACK
export RootProblem, implicit_vjp, implicit_jvp, linear_solve_vjp, ot_cost_gradient, ot_plan_vjp, ot_plan_jvp
export CELL_FLUID, CELL_SOLID, CELL_AIR

# ---------------------------------------------------------------- library

const _libpath = Ref{String}("")

"""The `libadjunct` preference (a path), or `nothing` when unset."""
const _preferred_library = @load_preference("libadjunct", nothing)

"""
    set_library!(path)

Stores `path` (a `libadjunct.so`/`.dylib`) as this package's `libadjunct`
preference in the active project's `LocalPreferences.toml`; it takes effect
after Julia restarts, ahead of `ENV["ADJUNCT_LIB"]`.
"""
function set_library!(path::AbstractString)
    isfile(path) || throw(ArgumentError("\"$path\" is not a file"))
    @set_preferences!("libadjunct" => abspath(path))
    @info "Adjunct: the library preference is set to $(abspath(path)); restart Julia to use it"
    return nothing
end

"""Path of the adjunct shared library (resolved on first use)."""
function libadjunct()
    isempty(_libpath[]) || return _libpath[]
    if _preferred_library !== nothing
        isfile(_preferred_library) ||
            error("the `libadjunct` preference \"$(_preferred_library)\" is not a file (Adjunct.set_library! resets it)")
        return _libpath[] = _preferred_library
    end
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
const ADJ_ERR_IO = Cint(-8)
const ADJ_ERR_FORMAT = Cint(-9)
const ADJ_ERR_OUT_OF_MEMORY = Cint(-10)

"""The name and meaning of a status code, e.g. `"ADJ_ERR_NOT_SPD: …"`."""
status_string(status::Integer) =
    unsafe_string(ccall((:adj_status_string, libadjunct()), Cstring, (Cint,), status))

"""
    check_layouts()

Compares the size of every Julia mirror of a C struct with the loaded
library's (`adj_sizeof`); throws an `ErrorException` naming the first that
differs (a library of another ABI, or a mirror out of date).
"""
function check_layouts()
    for (T, name) in ((CgOptions, "adj_cg_options"), (SolveReport, "adj_solve_report"),
                      (ImplicitOptions, "adj_implicit_options"), (CRootProblem, "adj_root_problem"),
                      (CdmOptions, "adj_cdm_options"), (CdmReport, "adj_cdm_report"),
                      (OtOptions, "adj_ot_options"), (OtResult, "adj_ot_result"),
                      (GridOptions, "adj_grid_options"))
        size = ccall((:adj_sizeof, libadjunct()), Csize_t, (Cstring,), name)
        size == sizeof(T) || error("$name has $size bytes in the library but $(sizeof(T)) in Adjunct.$T")
    end
    return nothing
end

"""A failed library call: the `adj_status` code and the library's message."""
struct AdjunctError <: Exception
    status::Cint
    message::String
end

Base.showerror(io::IO, e::AdjunctError) =
    print(io, "AdjunctError(", status_string(e.status), "): ", e.message)

function last_error_message()
    return unsafe_string(ccall((:adj_last_error_message, libadjunct()), Cstring, ()))
end

function _check(status::Cint)
    status == ADJ_OK || throw(AdjunctError(status, last_error_message()))
    return nothing
end

"""The loaded library's version, e.g. `v"0.3.0"`."""
version() = VersionNumber(unsafe_string(ccall((:adj_version, libadjunct()), Cstring, ())))

"""Sets the number of worker threads of the library's kernels (0 = one per core)."""
set_num_threads(n::Integer) = _check(ccall((:adj_set_num_threads, libadjunct()), Cint, (Csize_t,), n))

"""The number of worker threads the library's kernels use."""
num_threads() = Int(ccall((:adj_get_num_threads, libadjunct()), Csize_t, ()))

# ---------------------------------------------------------------- callbacks

# The one way a Julia function reaches the library: a `_Callback` is the
# C `ctx` of every callback (vector maps, root-problem products, reductions,
# halo exchanges); its `f` is what the C entry points call (a function, the
# four products of a root problem, or a communicator's two functions). An
# exception is kept in `error`, the library sees a nonzero return
# (ADJ_ERR_CALLBACK), and `_rethrow` throws it after the call returns.
mutable struct _Callback
    f::Any
    error::Any
end
_Callback(f) = _Callback(f, nothing)

# Runs `call(cb.f)` for the `_Callback` behind `ctx`: 0, or 1 with the
# exception kept.
function _invoke(call, ctx::Ptr{Cvoid})::Cint
    cb = unsafe_pointer_to_objref(ctx)::_Callback
    try
        call(cb.f)
        return Cint(0)
    catch e
        cb.error = CapturedException(e, catch_backtrace())
        return Cint(1)
    end
end

# adj_apply_fn: f!(y, x) writes y.
_vector_map(ctx::Ptr{Cvoid}, x::Ptr{Cdouble}, y::Ptr{Cdouble}, n::Csize_t)::Cint =
    _invoke(f! -> f!(unsafe_wrap(Array, y, Int(n)), unsafe_wrap(Array, x, Int(n))), ctx)

# The Jacobian products of a root problem: four C entry points sharing one
# context whose `f` holds [A!, At!, B!, Bt!], each f!(y, v).
_product(ctx::Ptr{Cvoid}, k::Int, v::Ptr{Cdouble}, vl::Csize_t, y::Ptr{Cdouble}, yl::Csize_t)::Cint =
    _invoke(f -> f[k](unsafe_wrap(Array, y, Int(yl)), unsafe_wrap(Array, v, Int(vl))), ctx)
_product_a(ctx::Ptr{Cvoid}, v::Ptr{Cdouble}, vl::Csize_t, y::Ptr{Cdouble}, yl::Csize_t)::Cint = _product(ctx, 1, v, vl, y, yl)
_product_at(ctx::Ptr{Cvoid}, v::Ptr{Cdouble}, vl::Csize_t, y::Ptr{Cdouble}, yl::Csize_t)::Cint = _product(ctx, 2, v, vl, y, yl)
_product_b(ctx::Ptr{Cvoid}, v::Ptr{Cdouble}, vl::Csize_t, y::Ptr{Cdouble}, yl::Csize_t)::Cint = _product(ctx, 3, v, vl, y, yl)
_product_bt(ctx::Ptr{Cvoid}, v::Ptr{Cdouble}, vl::Csize_t, y::Ptr{Cdouble}, yl::Csize_t)::Cint = _product(ctx, 4, v, vl, y, yl)

# adj_allreduce_fn: allreduce!(buf) sums buf over ranks; a communicator's
# context holds (allreduce!, exchange!).
_allreduce_of(f) = f
_allreduce_of(f::Tuple) = f[1]
_reduction(ctx::Ptr{Cvoid}, buf::Ptr{Cdouble}, n::Csize_t)::Cint =
    _invoke(f -> _allreduce_of(f)(unsafe_wrap(Array, buf, Int(n))), ctx)

const _VECTOR_MAP = Ref{Ptr{Cvoid}}(C_NULL)
const _PRODUCTS = [Ref{Ptr{Cvoid}}(C_NULL) for _ in 1:4]
const _REDUCTION = Ref{Ptr{Cvoid}}(C_NULL)

function __init__()
    _VECTOR_MAP[] = @cfunction(_vector_map, Cint, (Ptr{Cvoid}, Ptr{Cdouble}, Ptr{Cdouble}, Csize_t))
    _PRODUCTS[1][] = @cfunction(_product_a, Cint, (Ptr{Cvoid}, Ptr{Cdouble}, Csize_t, Ptr{Cdouble}, Csize_t))
    _PRODUCTS[2][] = @cfunction(_product_at, Cint, (Ptr{Cvoid}, Ptr{Cdouble}, Csize_t, Ptr{Cdouble}, Csize_t))
    _PRODUCTS[3][] = @cfunction(_product_b, Cint, (Ptr{Cvoid}, Ptr{Cdouble}, Csize_t, Ptr{Cdouble}, Csize_t))
    _PRODUCTS[4][] = @cfunction(_product_bt, Cint, (Ptr{Cvoid}, Ptr{Cdouble}, Csize_t, Ptr{Cdouble}, Csize_t))
    _REDUCTION[] = @cfunction(_reduction, Cint, (Ptr{Cvoid}, Ptr{Cdouble}, Csize_t))
    _EXCHANGE[] = @cfunction(_comm_exchange, Cint, (Ptr{Cvoid}, Ptr{HaloMessage}, Csize_t))
end

function _rethrow(cb)
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

"""Mirror of `adj_grid_options`."""
struct GridOptions
    struct_size::Csize_t  # sizeof of this mirror, as the header's `struct_size`
    spacing::Ptr{Cdouble}
    face_coefficients::Ptr{Cdouble}
    scale::Cdouble
    air_level_set::Ptr{Cdouble}
    min_air_fraction::Cdouble
    fluid_code::UInt8
    solid_code::UInt8
    air_code::UInt8
end

"""The library's default `GridOptions` (its `adj_grid_options_init`)."""
function grid_options_default()
    r = Ref{GridOptions}()
    _check(ccall((:adj_grid_options_init, libadjunct()), Cint, (Ref{GridOptions}, Csize_t), r, sizeof(GridOptions)))
    return r[]
end

"""The `GridOptions` of the keywords of `grid_poisson` (arrays as `Vector{Float64}` or
`nothing`; the caller keeps them alive while the options are used)."""
function _grid_options(h, beta, scale, phi, min_air_fraction, codes)
    d = grid_options_default()
    c = codes === nothing ? (fluid=d.fluid_code, solid=d.solid_code, air=d.air_code) : codes
    ptr(v) = v isa Vector{Float64} ? pointer(v) : Ptr{Cdouble}(C_NULL)
    return GridOptions(d.struct_size, ptr(h), ptr(beta), scale, ptr(phi), min_air_fraction,
                       UInt8(c.fluid), UInt8(c.solid), UInt8(c.air))
end

"""
    grid_poisson(cells; spacing=nothing, face_coefficients=nothing, scale=1.0,
                 air_level_set=nothing, min_air_fraction=0.01, codes=nothing)

The pressure Poisson operator on the grid of `cells` (an `nx×ny` or
`nx×ny×nz` array of `CELL_FLUID`, `CELL_SOLID`, `CELL_AIR`, or of the
caller's own codes given as `codes = (fluid=1, solid=2, air=0)`).
`spacing`: `ndim` grid spacings; `face_coefficients`: `ndim·length(cells)`
values β ≥ 0 (axis-major, see the C header); `scale`: a factor s > 0 on
the whole operator, A = s·(−∇·β∇) (e.g. dt/ρ); `air_level_set`: a level set
φ of the liquid per cell (< 0 liquid, ≥ 0 air) for ghost-fluid free
surfaces, the face to an air cell weighted β/(θh²) with θ = φᵢ/(φᵢ − φₐ)
clamped to [`min_air_fraction`, 1]. Unknowns are the fluid cells in array
order; a grid without fluid cells has none.
"""
function grid_poisson(cells::AbstractArray{UInt8}; spacing=nothing, face_coefficients=nothing, scale::Real=1.0,
                      air_level_set=nothing, min_air_fraction::Real=0.01, codes=nothing)
    ndims(cells) in (2, 3) || throw(ArgumentError("cells must be a 2D or 3D array"))
    nx, ny, nz = size(cells, 1), size(cells, 2), size(cells, 3)
    flags = Vector{UInt8}(vec(cells))
    h = spacing === nothing ? Ptr{Cdouble}(C_NULL) : Vector{Float64}(spacing)
    beta = face_coefficients === nothing ? Ptr{Cdouble}(C_NULL) : Vector{Float64}(vec(face_coefficients))
    out = Ref{Ptr{Cvoid}}(C_NULL)
    if scale == 1 && air_level_set === nothing && codes === nothing
        _check(ccall((:adj_operator_new_grid_poisson, libadjunct()), Cint,
                     (Csize_t, Csize_t, Csize_t, Ptr{UInt8}, Ptr{Cdouble}, Ptr{Cdouble}, Ref{Ptr{Cvoid}}),
                     nx, ny, nz, flags, h, beta, out))
        return Operator(out[])
    end
    phi = air_level_set === nothing ? nothing : Vector{Float64}(vec(air_level_set))
    GC.@preserve h beta phi begin
        options = _grid_options(h, beta, scale, phi, min_air_fraction, codes)
        _check(ccall((:adj_operator_new_grid, libadjunct()), Cint,
                     (Csize_t, Csize_t, Csize_t, Ptr{UInt8}, Ref{GridOptions}, Ref{Ptr{Cvoid}}),
                     nx, ny, nz, flags, options, out))
    end
    return Operator(out[])
end

"""
    gather(A, field::AbstractArray{Float32})

The fluid cells of a float32 per-cell field, as `Vector{Float64}` unknowns.
"""
function gather(A::Operator, field::AbstractArray{Float32})
    f = Vector{Float32}(vec(field))
    u = zeros(dim(A))
    _check(ccall((:adj_grid_gather_f32, libadjunct()), Cint, (Ptr{Cvoid}, Ptr{Cfloat}, Csize_t, Ptr{Cdouble}, Csize_t),
                 A, f, length(f), u, length(u)))
    return u
end

"""
    scatter!(field::AbstractVector{Float32}, A, unknowns)

Writes the unknowns into a float32 per-cell field (rounded; 0 at solid and air cells).
"""
function scatter!(field::Vector{Float32}, A::Operator, unknowns::AbstractVector{<:Real})
    u = Vector{Float64}(unknowns)
    _check(ccall((:adj_grid_scatter_f32, libadjunct()), Cint, (Ptr{Cvoid}, Ptr{Cdouble}, Csize_t, Ptr{Cfloat}, Csize_t),
                 A, u, length(u), field, length(field)))
    return field
end

"""
    PressureSolver(nx, ny, nz=1)

A persistent pressure solver for a simulator's per-frame projection:
`update!(s, cells; kwargs...)` sets up the frame (keywords as for
`grid_poisson`) and rebuilds the multigrid hierarchy, `solve!(s, p, rhs)`
runs multigrid-PCG from the last pressure and writes the pressure per cell.
Fields are `Float64` or `Float32` arrays of the grid's shape.
"""
mutable struct PressureSolver
    ptr::Ptr{Cvoid}
    dims::NTuple{3,Int}
    function PressureSolver(nx::Integer, ny::Integer, nz::Integer=1)
        out = Ref{Ptr{Cvoid}}(C_NULL)
        _check(ccall((:adj_pressure_solver_new, libadjunct()), Cint, (Csize_t, Csize_t, Csize_t, Ref{Ptr{Cvoid}}),
                     nx, ny, nz, out))
        s = new(out[], (Int(nx), Int(ny), Int(nz)))
        finalizer(s) do s
            ccall((:adj_pressure_solver_free, libadjunct()), Cvoid, (Ptr{Cvoid},), s.ptr)
            s.ptr = C_NULL
        end
        return s
    end
end

"""
    update!(s::PressureSolver, cells; spacing, face_coefficients, scale, air_level_set, min_air_fraction, codes)

Sets up the next frame from its cell flags (keywords as for `grid_poisson`).
"""
function update!(s::PressureSolver, cells::AbstractArray{UInt8}; spacing=nothing, face_coefficients=nothing,
                 scale::Real=1.0, air_level_set=nothing, min_air_fraction::Real=0.01, codes=nothing)
    length(cells) == prod(s.dims) || throw(DimensionMismatch("cells must have $(prod(s.dims)) entries"))
    flags = Vector{UInt8}(vec(cells))
    h = spacing === nothing ? nothing : Vector{Float64}(spacing)
    beta = face_coefficients === nothing ? nothing : Vector{Float64}(vec(face_coefficients))
    phi = air_level_set === nothing ? nothing : Vector{Float64}(vec(air_level_set))
    GC.@preserve h beta phi begin
        options = _grid_options(h, beta, scale, phi, min_air_fraction, codes)
        _check(ccall((:adj_pressure_solver_update, libadjunct()), Cint, (Ptr{Cvoid}, Ptr{UInt8}, Ref{GridOptions}),
                     s, flags, options))
    end
    return s
end

"""Wall time of the last `update!` (the multigrid hierarchy), in seconds."""
function setup_seconds(s::PressureSolver)
    t = Ref{Cdouble}(0.0)
    _check(ccall((:adj_pressure_solver_setup_seconds, libadjunct()), Cint, (Ptr{Cvoid}, Ref{Cdouble}), s, t))
    return t[]
end

"""
    report = solve!(s::PressureSolver, pressure, rhs; warm_start=true, rtol=1e-8, atol=0.0, maxiter=10_000, norm=:two)

Solves the frame's A p = rhs (per-cell arrays, `Float64` or `Float32`; only
fluid cells of `rhs` are read) and writes p into `pressure` (0 at solid and
air cells), from the last pressure when `warm_start`.
"""
function solve!(s::PressureSolver, pressure::Array{Float64}, rhs::AbstractArray{<:Real}; warm_start::Bool=true,
                rtol::Real=1e-8, atol::Real=0.0, maxiter::Integer=10_000, norm::Symbol=:two)
    r = Vector{Float64}(vec(rhs))
    report = _solve_report()
    options = CgOptions(sizeof(CgOptions), rtol, atol, maxiter, 0, Ptr{Cdouble}(C_NULL), 0, _norm_code(norm))
    _check(ccall((:adj_pressure_solver_solve, libadjunct()), Cint,
                 (Ptr{Cvoid}, Ptr{Cdouble}, Ptr{Cdouble}, Csize_t, Int32, Ref{CgOptions}, Ref{SolveReport}),
                 s, r, pressure, length(pressure), warm_start ? 1 : 0, options, report))
    return _report(report[])
end

function solve!(s::PressureSolver, pressure::Array{Float32}, rhs::AbstractArray{<:Real}; warm_start::Bool=true,
                rtol::Real=1e-8, atol::Real=0.0, maxiter::Integer=10_000, norm::Symbol=:two)
    r = Vector{Float32}(vec(rhs))
    report = _solve_report()
    options = CgOptions(sizeof(CgOptions), rtol, atol, maxiter, 0, Ptr{Cdouble}(C_NULL), 0, _norm_code(norm))
    _check(ccall((:adj_pressure_solver_solve_f32, libadjunct()), Cint,
                 (Ptr{Cvoid}, Ptr{Cfloat}, Ptr{Cfloat}, Csize_t, Int32, Ref{CgOptions}, Ref{SolveReport}),
                 s, r, pressure, length(pressure), warm_start ? 1 : 0, options, report))
    return _report(report[])
end

"""
    callback_operator(f!, n)

A matrix-free operator of dimension `n`: `f!(y, x)` must write `y = A*x`.
"""
function callback_operator(f!, n::Integer)
    cb = _Callback(f!)
    out = Ref{Ptr{Cvoid}}(C_NULL)
    _check(ccall((:adj_operator_new_callback, libadjunct()), Cint,
                 (Csize_t, Ptr{Cvoid}, Ptr{Cvoid}, Ref{Ptr{Cvoid}}),
                 n, _VECTOR_MAP[], pointer_from_objref(cb), out))
    return Operator(out[], cb)
end

"""The dimension (number of unknowns) of an operator."""
function dim(A::Operator)
    n = Ref{Csize_t}(0)
    _check(ccall((:adj_operator_dim, libadjunct()), Cint, (Ptr{Cvoid}, Ref{Csize_t}), A, n))
    return Int(n[])
end

"""`apply(A, x)` returns `A*x`."""
function apply(A::Operator, x::AbstractVector{<:Real})
    xx = Vector{Float64}(x)
    y = similar(xx)
    status = GC.@preserve A ccall((:adj_operator_apply, libadjunct()), Cint,
                                  (Ptr{Cvoid}, Ptr{Cdouble}, Ptr{Cdouble}, Csize_t), A, xx, y, length(xx))
    _rethrow(A.callback)
    _check(status)
    return y
end

Base.:*(A::Operator, x::AbstractVector{<:Real}) = apply(A, x)
Base.size(A::Operator) = (n = dim(A); (n, n))
Base.size(A::Operator, k::Integer) = k <= 2 ? dim(A) : 1
Base.eltype(::Type{Operator}) = Float64

"""`mul!(y, A, x)`: y = A x in place (`Vector{Float64}`s of the operator's dimension)."""
function LinearAlgebra.mul!(y::Vector{Float64}, A::Operator, x::Vector{Float64})
    length(x) == length(y) || throw(DimensionMismatch("x has $(length(x)) entries, y $(length(y))"))
    status = ccall((:adj_operator_apply, libadjunct()), Cint, (Ptr{Cvoid}, Ptr{Cdouble}, Ptr{Cdouble}, Csize_t),
                   A, x, y, length(x))
    _rethrow(A.callback)
    _check(status)
    return y
end

"""The number of cells of a grid operator."""
function num_cells(A::Operator)
    n = Ref{Csize_t}(0)
    _check(ccall((:adj_grid_num_cells, libadjunct()), Cint, (Ptr{Cvoid}, Ref{Csize_t}), A, n))
    return Int(n[])
end

"""The fluid cells of a per-cell field, as a vector of unknowns."""
function gather(A::Operator, field::AbstractArray{<:Real})
    f = Vector{Float64}(vec(field))
    u = zeros(dim(A))
    _check(ccall((:adj_grid_gather, libadjunct()), Cint,
                 (Ptr{Cvoid}, Ptr{Cdouble}, Csize_t, Ptr{Cdouble}, Csize_t), A, f, length(f), u, length(u)))
    return u
end

"""A per-cell field (vector in cell order) from unknowns; 0 in solid and air cells."""
function scatter(A::Operator, unknowns::AbstractVector{<:Real})
    u = Vector{Float64}(unknowns)
    f = zeros(num_cells(A))
    _check(ccall((:adj_grid_scatter, libadjunct()), Cint,
                 (Ptr{Cvoid}, Ptr{Cdouble}, Csize_t, Ptr{Cdouble}, Csize_t), A, u, length(u), f, length(f)))
    return f
end

"""The matrix of a CSR or grid operator as a `SparseMatrixCSC`."""
function to_csr(A::Operator)
    n = dim(A)
    nnz = Ref{Csize_t}(0)
    _check(ccall((:adj_operator_csr_nnz, libadjunct()), Cint, (Ptr{Cvoid}, Ref{Csize_t}), A, nnz))
    row_ptr = zeros(Int64, n + 1)
    col_idx = zeros(Int64, nnz[])
    values = zeros(Float64, nnz[])
    _check(ccall((:adj_operator_write_csr_i64, libadjunct()), Cint,
                 (Ptr{Cvoid}, Ptr{Int64}, Csize_t, Ptr{Int64}, Csize_t, Ptr{Cdouble}, Csize_t),
                 A, row_ptr, length(row_ptr), col_idx, length(col_idx), values, length(values)))
    # CSR arrays of A are the CSC arrays of Aᵀ.
    At = SparseMatrixCSC(n, n, row_ptr .+ 1, col_idx .+ 1, values)
    return sparse(transpose(At))
end

# ---------------------------------------------------------------- distributed pressure solves

"""Mirror of `adj_halo_message`."""
struct HaloMessage
    offset::NTuple{3,Int32}
    send::Ptr{Cvoid}
    send_bytes::Csize_t
    recv::Ptr{Cvoid}
    recv_bytes::Csize_t
end

"""Mirror of `adj_comm`."""
struct CComm
    struct_size::Csize_t  # sizeof of this mirror, as the header's `struct_size`
    ctx::Ptr{Cvoid}
    rank::Csize_t
    size::Csize_t
    allreduce_sum::Ptr{Cvoid}
    exchange::Ptr{Cvoid}
end

"""Mirror of `adj_comm_stats`."""
struct CommStats
    struct_size::Csize_t  # sizeof of this mirror, as the header's `struct_size`
    allreduces::UInt64
    allreduce_values::UInt64
    exchanges::UInt64
    messages::UInt64
    bytes::UInt64
end

# adj_comm's exchange: a communicator's context holds (allreduce!, exchange!);
# exchange!(messages) gets (offset, send, recv) views of the buffers.
function _comm_exchange(ctx::Ptr{Cvoid}, messages::Ptr{HaloMessage}, count::Csize_t)::Cint
    return _invoke(ctx) do f
        views = [(offset=(Int(m.offset[1]), Int(m.offset[2]), Int(m.offset[3])),
                  send=unsafe_wrap(Array, Ptr{UInt8}(m.send), Int(m.send_bytes)),
                  recv=unsafe_wrap(Array, Ptr{UInt8}(m.recv), Int(m.recv_bytes)))
                 for m in unsafe_wrap(Array, messages, Int(count))]
        f[2](views)
    end
end

const _EXCHANGE = Ref{Ptr{Cvoid}}(C_NULL)

"""The `CComm` of rank `rank` of `nranks` whose context is `cb`, with the C
entry points `allreduce` and `exchange` (C_NULL for none; the library's
defaults, `adj_comm_init`, for the rest)."""
function _c_comm(cb::_Callback, rank::Integer, nranks::Integer, allreduce::Ptr{Cvoid}, exchange::Ptr{Cvoid})
    r = Ref{CComm}()
    _check(ccall((:adj_comm_init, libadjunct()), Cint, (Ref{CComm}, Csize_t), r, sizeof(CComm)))
    return CComm(r[].struct_size, pointer_from_objref(cb), rank, nranks, allreduce, exchange)
end

"""The `adj_comm` (in a `Ref`, for `options.comm`) of a solve whose operator
does its own halo exchanges: only the sum over ranks `reduction.f`
(`nothing`: the same algorithm run serially) and no exchange."""
_reduction_comm(reduction::_Callback) =
    Ref(_c_comm(reduction, 0, 1, reduction.f === nothing ? C_NULL : _REDUCTION[], C_NULL))

"""The library's default `CommStats` (its `adj_comm_stats_init`)."""
function _comm_stats()
    r = Ref{CommStats}()
    _check(ccall((:adj_comm_stats_init, libadjunct()), Cint, (Ref{CommStats}, Csize_t), r, sizeof(CommStats)))
    return r
end

"""
    DistributedPressureSolver(cells, dims, box; rank, nranks, allreduce!, exchange!,
                              spacing=nothing, face_coefficients=nothing, scale=1.0, codes=nothing)

This rank's part of multigrid-PCG on a grid of `dims = (nx, ny, nz)`
cells split into one box per rank (MPI ranks, reached through two Julia
functions; the library does not link MPI). `box = (i_range, j_range,
k_range)` are this rank's cells (1-based, e.g. `(1:32, 17:32, 1:64)`) and
`cells` their flags (an array of the box's shape; codes and keywords as
for `grid_poisson`, the face coefficients those of the box's cells). The
boxes must form a Cartesian decomposition (`MPI.Cart_create`).

`allreduce!(buf)` replaces `buf` by its elementwise sum over all ranks
(`MPI.Allreduce!(buf, +, comm)`); `exchange!(messages)` sends each
message's `send` bytes to the rank at `offset` (a tuple in {-1, 0, 1}³ in
the grid of boxes) and receives that rank's bytes into `recv`
(`MPI.Irecv!`/`MPI.Isend` per message, then `MPI.Waitall`); see
`examples/julia/distributed_pressure.jl`. Construction and `solve!` are
collective: every rank calls them; an error on any rank is an
`AdjunctError` on every rank.
"""
mutable struct DistributedPressureSolver
    ptr::Ptr{Cvoid}
    comm::_Callback
    box_size::NTuple{3,Int}
    function DistributedPressureSolver(cells::AbstractArray{UInt8}, dims, box; rank::Integer, nranks::Integer,
                                       allreduce!, exchange!, spacing=nothing, face_coefficients=nothing,
                                       scale::Real=1.0, codes=nothing)
        ranges = ntuple(a -> a <= length(box) ? box[a] : (1:1), 3)
        box_size = map(length, ranges)
        length(cells) == prod(box_size) || throw(DimensionMismatch("cells must have $(prod(box_size)) entries"))
        lo = Csize_t[first(r) - 1 for r in ranges]
        hi = Csize_t[last(r) for r in ranges]
        n = Csize_t[a <= length(dims) ? dims[a] : 1 for a in 1:3]
        comm = _Callback((allreduce!, exchange!))
        flags = Vector{UInt8}(vec(cells))
        h = spacing === nothing ? nothing : Vector{Float64}(spacing)
        beta = face_coefficients === nothing ? nothing : Vector{Float64}(vec(face_coefficients))
        out = Ref{Ptr{Cvoid}}(C_NULL)
        status = GC.@preserve comm h beta begin
            c = _c_comm(comm, rank, nranks, _REDUCTION[], _EXCHANGE[])
            options = _grid_options(h, beta, scale, nothing, 0.01, codes)
            ccall((:adj_distributed_pressure_solver_new, libadjunct()), Cint,
                  (Ref{CComm}, Csize_t, Csize_t, Csize_t, Ptr{Csize_t}, Ptr{Csize_t}, Ptr{UInt8}, Ref{GridOptions},
                   Ref{Ptr{Cvoid}}),
                  c, n[1], n[2], n[3], lo, hi, flags, options, out)
        end
        _rethrow(comm)
        _check(status)
        s = new(out[], comm, box_size)
        finalizer(s) do s
            ccall((:adj_distributed_pressure_solver_free, libadjunct()), Cvoid, (Ptr{Cvoid},), s.ptr)
            s.ptr = C_NULL
        end
        return s
    end
end

"""
    update!(s::DistributedPressureSolver, cells; face_coefficients=nothing, codes=nothing)

Sets up the next frame from this rank's new cell flags (the box's shape;
the spacing and scale stay those of construction). Collective; on an
error every rank keeps its frame.
"""
function update!(s::DistributedPressureSolver, cells::AbstractArray{UInt8}; face_coefficients=nothing, codes=nothing)
    length(cells) == prod(s.box_size) || throw(DimensionMismatch("cells must have $(prod(s.box_size)) entries"))
    flags = Vector{UInt8}(vec(cells))
    beta = face_coefficients === nothing ? nothing : Vector{Float64}(vec(face_coefficients))
    status = GC.@preserve s beta begin
        options = _grid_options(nothing, beta, 1.0, nothing, 0.01, codes)
        ccall((:adj_distributed_pressure_solver_update, libadjunct()), Cint,
              (Ptr{Cvoid}, Ptr{UInt8}, Ref{GridOptions}), s, flags, options)
    end
    _rethrow(s.comm)
    _check(status)
    return s
end

"""
    report = solve!(s::DistributedPressureSolver, pressure, rhs; warm_start=false, rtol=1e-8, atol=0.0,
                    maxiter=10_000, norm=:two)

Solves this rank's part of A p = rhs (arrays of the box's shape, `Float64`
or `Float32`; only fluid cells of `rhs` are read) from the last pressure
when `warm_start` (else p = 0), to
‖b − A p‖ ≤ max(rtol·‖b‖, atol) over the whole grid, and writes p into
`pressure` (0 at solid and air cells). Collective. The report (the same on
every rank) carries this rank's communication in `comm`.
"""
function solve!(s::DistributedPressureSolver, pressure::Array{T}, rhs::AbstractArray{<:Real}; warm_start::Bool=false,
                rtol::Real=1e-8, atol::Real=0.0, maxiter::Integer=10_000,
                norm::Symbol=:two) where {T<:Union{Float64,Float32}}
    length(pressure) == prod(s.box_size) || throw(DimensionMismatch("pressure must have $(prod(s.box_size)) entries"))
    r = Vector{T}(vec(rhs))
    report = _solve_report()
    stats = _comm_stats()
    options = CgOptions(sizeof(CgOptions), rtol, atol, maxiter, 0, Ptr{Cdouble}(C_NULL), 0, _norm_code(norm))
    status = GC.@preserve s begin
        if T === Float64
            ccall((:adj_distributed_pressure_solver_solve, libadjunct()), Cint,
                  (Ptr{Cvoid}, Ptr{Cdouble}, Ptr{Cdouble}, Csize_t, Int32, Ref{CgOptions}, Ref{SolveReport},
                   Ref{CommStats}),
                  s, r, pressure, length(pressure), warm_start ? 1 : 0, options, report, stats)
        else
            ccall((:adj_distributed_pressure_solver_solve_f32, libadjunct()), Cint,
                  (Ptr{Cvoid}, Ptr{Cfloat}, Ptr{Cfloat}, Csize_t, Int32, Ref{CgOptions}, Ref{SolveReport},
                   Ref{CommStats}),
                  s, r, pressure, length(pressure), warm_start ? 1 : 0, options, report, stats)
        end
    end
    _rethrow(s.comm)
    _check(status)
    c = stats[]
    comm = (allreduces=Int(c.allreduces), allreduce_values=Int(c.allreduce_values), exchanges=Int(c.exchanges),
            messages=Int(c.messages), bytes=Int(c.bytes))
    return merge(_report(report[]), (comm=comm,))
end

# ---------------------------------------------------------------- preconditioners

const ADJ_PRECOND_NONE = UInt32(0)
const ADJ_PRECOND_JACOBI = UInt32(1)
const ADJ_PRECOND_IC0 = UInt32(2)
const ADJ_PRECOND_MULTIGRID = UInt32(3)

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
           kind === :ic0 ? ADJ_PRECOND_IC0 : kind === :multigrid ? ADJ_PRECOND_MULTIGRID :
           throw(ArgumentError("unknown preconditioner $kind (:none, :jacobi, :ic0, :multigrid)"))
    out = Ref{Ptr{Cvoid}}(C_NULL)
    _check(ccall((:adj_precond_new, libadjunct()), Cint, (Ptr{Cvoid}, UInt32, Ref{Ptr{Cvoid}}), A, code, out))
    return Preconditioner(out[])
end

"""
    ldiv!(z, P, r)

z = M⁻¹ r (`Vector{Float64}`s of P's dimension), so that `P` can precondition
another package's solver (`Pl` of IterativeSolvers.jl, `M` with `ldiv=true`
in Krylov.jl). `ldiv!(P, r)` overwrites r, `P \\ r` allocates.
"""
function LinearAlgebra.ldiv!(z::Vector{Float64}, P::Preconditioner, r::Vector{Float64})
    length(z) == length(r) || throw(DimensionMismatch("r has $(length(r)) entries, z $(length(z))"))
    status = ccall((:adj_precond_apply, libadjunct()), Cint, (Ptr{Cvoid}, Ptr{Cdouble}, Ptr{Cdouble}, Csize_t),
                   P, r, z, length(r))
    _rethrow(P.callback)
    _check(status)
    return z
end

LinearAlgebra.ldiv!(P::Preconditioner, r::Vector{Float64}) = ldiv!(r, P, copy(r))
Base.:\(P::Preconditioner, r::AbstractVector{<:Real}) = ldiv!(zeros(length(r)), P, Vector{Float64}(r))

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
    cb = _Callback(f!)
    out = Ref{Ptr{Cvoid}}(C_NULL)
    _check(ccall((:adj_precond_new_callback, libadjunct()), Cint,
                 (Csize_t, Ptr{Cvoid}, Ptr{Cvoid}, Ref{Ptr{Cvoid}}),
                 n, _VECTOR_MAP[], pointer_from_objref(cb), out))
    return Preconditioner(out[], cb)
end

# ---------------------------------------------------------------- CG

"""Mirror of `adj_cg_options`."""
struct CgOptions
    struct_size::Csize_t  # sizeof of this mirror, as the header's `struct_size`
    rtol::Cdouble
    atol::Cdouble
    max_iterations::Csize_t
    nonzero_initial_guess::Int32
    residual_history::Ptr{Cdouble}
    residual_history_capacity::Csize_t
    norm::UInt32
    comm::Ptr{CComm}  # distributed solves (adj_cg_solve only); C_NULL: serial
end

# Every option but the communicator (serial solves).
CgOptions(struct_size, rtol, atol, max_iterations, nonzero_initial_guess, residual_history,
          residual_history_capacity, norm) =
    CgOptions(struct_size, rtol, atol, max_iterations, nonzero_initial_guess, residual_history,
              residual_history_capacity, norm, Ptr{CComm}(C_NULL))

"""Mirror of `adj_solve_report`."""
struct SolveReport
    struct_size::Csize_t  # sizeof of this mirror, as the header's `struct_size`
    iterations::Csize_t
    residual_norm::Cdouble
    true_residual_norm::Cdouble
    relative_residual::Cdouble
    initial_residual_norm::Cdouble
    reason::Cint
    residual_history_length::Csize_t
    null_space_component::Cdouble
end

"""The library's default `CgOptions` (its `adj_cg_options_init`)."""
function cg_options_default()
    r = Ref{CgOptions}()
    _check(ccall((:adj_cg_options_init, libadjunct()), Cint, (Ref{CgOptions}, Csize_t), r, sizeof(CgOptions)))
    return r[]
end

"""
    x, report = cg(A, b; rtol=1e-8, atol=0.0, maxiter=10_000, precond=nothing, x0=nothing, history=false,
                   norm=:two)

Solves `A x = b` (A symmetric positive definite: an `Operator` or a
`SparseMatrixCSC`) by preconditioned conjugate gradient to
‖b − A x‖ ≤ max(rtol‖b‖, atol), in the 2-norm or (`norm=:max`) in
max|rᵢ|, the test of fluid simulators. `precond` is `nothing`, a `Preconditioner`,
or one of `:jacobi`, `:ic0`. Throws `AdjunctError` when the solve fails (or
rethrows an exception thrown by a Julia callback).
"""
function cg(A::Operator, b::AbstractVector{<:Real}; rtol::Real=1e-8, atol::Real=0.0, maxiter::Integer=10_000,
            precond=nothing, x0=nothing, history::Bool=false, norm::Symbol=:two)
    pc = precond isa Symbol ? Preconditioner(A, precond) : precond
    bb = Vector{Float64}(b)
    x = x0 === nothing ? zeros(length(bb)) : Vector{Float64}(x0)
    hist = history ? zeros(Float64, maxiter) : Float64[]
    report = _solve_report()
    pc_ptr = pc === nothing ? C_NULL : pc
    status = GC.@preserve A pc hist begin
        options = CgOptions(sizeof(CgOptions), rtol, atol, maxiter, x0 === nothing ? 0 : 1,
                            history ? pointer(hist) : Ptr{Cdouble}(C_NULL), length(hist), _norm_code(norm))
        ccall((:adj_cg_solve, libadjunct()), Cint,
              (Ptr{Cvoid}, Ptr{Cvoid}, Ptr{Cdouble}, Ptr{Cdouble}, Csize_t, Ref{CgOptions}, Ref{SolveReport}),
              A, pc_ptr, bb, x, length(bb), options, report)
    end
    _rethrow(A.callback)
    pc === nothing || _rethrow(pc.callback)
    _check(status)
    return x, _report(report[], hist)
end

_norm_code(norm::Symbol) = norm === :two ? UInt32(0) : norm === :max ? UInt32(1) :
                            throw(ArgumentError("norm must be :two or :max"))

"""
    x = A \\ b
    ldiv!(x, A, b)

Solves A x = b for a symmetric positive definite `Operator` by CG to the
default tolerance (rtol 1e-8), preconditioned by the multigrid V-cycle for a
grid operator, by Jacobi for a CSR matrix and not at all for a callback
(`Adjunct.cg` chooses otherwise); throws `AdjunctError` when it does not
converge, never returns an unconverged x. `ldiv!` writes into `x`.
"""
Base.:\(A::Operator, b::AbstractVector{<:Real}) = first(cg(A, b; precond=_default_precond(A)))

function LinearAlgebra.ldiv!(x::AbstractVector{Float64}, A::Operator, b::AbstractVector{<:Real})
    length(x) == length(b) || throw(DimensionMismatch("x has length $(length(x)), b $(length(b))"))
    x .= A \ b
    return x
end

# The preconditioner `A \ b` uses: what the operator's kind supports best.
function _default_precond(A::Operator)
    cells, nnz = Ref{Csize_t}(0), Ref{Csize_t}(0)
    ccall((:adj_grid_num_cells, libadjunct()), Cint, (Ptr{Cvoid}, Ref{Csize_t}), A, cells) == 0 && return :multigrid
    ccall((:adj_operator_csr_nnz, libadjunct()), Cint, (Ptr{Cvoid}, Ref{Csize_t}), A, nnz) == 0 && return :jacobi
    return nothing
end

"""
Why a solve stopped (`adj_solve_reason`, PETSc's convention): converged
reasons are positive, diverged ones negative.
"""
@enum SolveReason::Cint begin
    CONVERGED_RTOL = 2
    CONVERGED_ATOL = 3
    DIVERGED_MAX_ITERATIONS = -3
    DIVERGED_BREAKDOWN = -5
    DIVERGED_INDEFINITE_PRECONDITIONER = -8
    DIVERGED_NAN_OR_INF = -9
    DIVERGED_INDEFINITE_OPERATOR = -10
    DIVERGED_CALLBACK = -100
end

"""`true` for the converged reasons."""
converged(reason::SolveReason) = Integer(reason) > 0

"""A `SolveReport` as a named tuple (`reason` a `SolveReason`); `history` is the caller's residual buffer."""
function _report(r::SolveReport, history::Vector{Float64}=Float64[])
    return (iterations=Int(r.iterations), residual_norm=r.residual_norm,
            true_residual_norm=r.true_residual_norm, relative_residual=r.relative_residual,
            initial_residual_norm=r.initial_residual_norm, reason=SolveReason(r.reason),
            null_space_component=r.null_space_component,
            history=history[1:Int(r.residual_history_length)])
end

cg(A::SparseMatrixCSC, b::AbstractVector{<:Real}; kwargs...) = cg(csr_operator(A), b; kwargs...)

"""An `adj_solve_report` initialised by the library, to be filled in by a solver."""
function _solve_report()
    r = Ref{SolveReport}()
    _check(ccall((:adj_solve_report_init, libadjunct()), Cint, (Ref{SolveReport}, Csize_t), r, sizeof(SolveReport)))
    return r
end

"""
    x, report = cg_distributed(A, b; allreduce! = nothing, rtol=1e-8, atol=0.0, maxiter=10_000, precond=nothing, x0=nothing)

Single-reduction CG (Chronopoulos–Gear) on this rank's part of a
distributed problem: `A` applies this rank's rows (e.g. a `callback_operator`
doing its own halo exchange), `b` and `x` are the local entries, and
`allreduce!(buf)` must replace `buf` by its elementwise sum over all ranks
(e.g. `MPI.Allreduce!(buf, +, comm)`); it is called once per iteration.
`allreduce! = nothing` runs the same algorithm serially. Every rank gets
the same iteration count and report; a callback error on one rank is an
`AdjunctError` on every rank.
"""
function cg_distributed(A::Operator, b::AbstractVector{<:Real}; allreduce! = nothing, rtol::Real=1e-8,
                        atol::Real=0.0, maxiter::Integer=10_000, precond=nothing, x0=nothing)
    pc = precond isa Symbol ? Preconditioner(A, precond) : precond
    bb = Vector{Float64}(b)
    x = x0 === nothing ? zeros(length(bb)) : Vector{Float64}(x0)
    reduction = _Callback(allreduce!)
    comm = _reduction_comm(reduction)
    report = _solve_report()
    pc_ptr = pc === nothing ? C_NULL : pc
    status = GC.@preserve A pc reduction comm begin
        options = CgOptions(sizeof(CgOptions), rtol, atol, maxiter, x0 === nothing ? 0 : 1, Ptr{Cdouble}(C_NULL), 0,
                            UInt32(0), Base.unsafe_convert(Ptr{CComm}, comm))
        ccall((:adj_cg_solve, libadjunct()), Cint,
              (Ptr{Cvoid}, Ptr{Cvoid}, Ptr{Cdouble}, Ptr{Cdouble}, Csize_t, Ref{CgOptions}, Ref{SolveReport}),
              A, pc_ptr, bb, x, length(bb), options, report)
    end
    _rethrow(A.callback)
    pc === nothing || _rethrow(pc.callback)
    _rethrow(reduction)
    _check(status)
    return x, _report(report[])
end

# ---------------------------------------------------------------- optimal transport

"""Mirror of `adj_ot_options`."""
struct OtOptions
    struct_size::Csize_t  # sizeof of this mirror, as the header's `struct_size`
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
    struct_size::Csize_t  # sizeof of this mirror, as the header's `struct_size`
    transport_cost::Cdouble
    objective::Cdouble
    marginal_error::Cdouble
    sinkhorn_iterations::Csize_t
    newton_iterations::Csize_t
    cg_iterations::Csize_t
    fallbacks::Csize_t
    hessian_entries_per_row::Csize_t
end

"""The library's default `OtOptions` (its `adj_ot_options_init`)."""
function ot_options_default()
    r = Ref{OtOptions}()
    _check(ccall((:adj_ot_options_init, libadjunct()), Cint, (Ref{OtOptions}, Csize_t), r, sizeof(OtOptions)))
    return r[]
end

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
    options = OtOptions(sizeof(OtOptions), eps, code, tol, d.max_sinkhorn_iterations, d.warmup_iterations, d.max_newton_iterations,
                        d.hessian_entries_per_row, d.max_hessian_entries_per_row, d.cg_rtol, d.cg_max_iterations)
    aa, bb = Vector{Float64}(a), Vector{Float64}(b)
    crow = permutedims(Matrix{Float64}(C))  # m×n column-major = n×m row-major
    f, g = zeros(n), zeros(m)
    P = plan ? Matrix{Float64}(undef, m, n) : nothing
    result = Ref{OtResult}()
    _check(ccall((:adj_ot_result_init, libadjunct()), Cint, (Ref{OtResult}, Csize_t), result, sizeof(OtResult)))
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


# ---------------------------------------------------------------- implicit differentiation

"""Mirror of `adj_implicit_options`."""
struct ImplicitOptions
    struct_size::Csize_t  # sizeof of this mirror, as the header's `struct_size`
    solver::UInt32
    gmres_restart::Csize_t
    rtol::Cdouble
    atol::Cdouble
    max_iterations::Csize_t
    ridge::Cdouble
    warm_start::Ptr{Cdouble}
    precond::Ptr{Cvoid}
end

"""Mirror of `adj_root_problem`."""
struct CRootProblem
    struct_size::Csize_t  # sizeof of this mirror, as the header's `struct_size`
    n::Csize_t
    p::Csize_t
    kind::UInt32
    ctx::Ptr{Cvoid}
    a::Ptr{Cvoid}
    a_t::Ptr{Cvoid}
    b::Ptr{Cvoid}
    b_t::Ptr{Cvoid}
end

"""The library's default `ImplicitOptions` (its `adj_implicit_options_init`)."""
function implicit_options_default()
    r = Ref{ImplicitOptions}()
    _check(ccall((:adj_implicit_options_init, libadjunct()), Cint, (Ref{ImplicitOptions}, Csize_t), r, sizeof(ImplicitOptions)))
    return r[]
end

const _SOLVERS = Dict(:cg => UInt32(0), :gmres => UInt32(1), :bicgstab => UInt32(2), :normal_cg => UInt32(3),
                      :dense_lu => UInt32(4))
const _JACOBIAN_KINDS = Dict(:general => UInt32(0), :symmetric => UInt32(1), :fixed_point => UInt32(2))

function _implicit_options(solver::Symbol, restart, rtol, atol, maxiter, ridge, warm_start, precond)
    haskey(_SOLVERS, solver) || throw(ArgumentError("solver must be one of $(sort(collect(keys(_SOLVERS))))"))
    ws = warm_start === nothing ? Ptr{Cdouble}(C_NULL) : pointer(warm_start)
    pc = precond === nothing ? C_NULL : precond
    return ImplicitOptions(sizeof(ImplicitOptions), _SOLVERS[solver], restart, rtol, atol, maxiter, ridge, ws, pc)
end

"""
    RootProblem(n, p; A!, At! = nothing, B! = nothing, Bt! = nothing, kind = :general)

The Jacobians of F(x, θ) = 0 at a solution x* ∈ ℝⁿ, θ ∈ ℝᵖ as in-place
products `f!(y, v)`: `A!` (y = ∂F/∂x v), `At!` (y = (∂F/∂x)ᵀ v; for VJPs
unless `kind = :symmetric`), `B!` (y = ∂F/∂θ v, v ∈ ℝᵖ; for JVPs), `Bt!`
(y = (∂F/∂θ)ᵀ v ∈ ℝᵖ; for VJPs). `kind = :fixed_point` means
F(x, θ) = T(x, θ) − x with the products given for T.
"""
struct RootProblem
    n::Int
    p::Int
    kind::Symbol
    products::_Callback
end

function RootProblem(n::Integer, p::Integer; A!, At! = nothing, B! = nothing, Bt! = nothing, kind::Symbol=:general)
    haskey(_JACOBIAN_KINDS, kind) || throw(ArgumentError("kind must be :general, :symmetric or :fixed_point"))
    return RootProblem(n, p, kind, _Callback(Any[A!, At!, B!, Bt!]))
end

"""The `struct_size` the library's `adj_root_problem_init` sets for this mirror."""
function _root_problem_size()
    r = Ref{CRootProblem}()
    _check(ccall((:adj_root_problem_init, libadjunct()), Cint, (Ref{CRootProblem}, Csize_t), r,
                 sizeof(CRootProblem)))
    return r[].struct_size
end

function _c_problem(problem::RootProblem)
    f = problem.products.f
    ptr(k) = f[k] === nothing ? C_NULL : _PRODUCTS[k][]
    return CRootProblem(_root_problem_size(), problem.n, problem.p, _JACOBIAN_KINDS[problem.kind], pointer_from_objref(problem.products),
                        ptr(1), ptr(2), ptr(3), ptr(4))
end

"""
    g, report = implicit_vjp(problem, v̄; solver=:gmres, restart=30, rtol=1e-10, atol=0.0, maxiter=10_000,
                             ridge=0.0, warm_start=nothing, precond=nothing)

(∂x*/∂θ)ᵀ v̄ = Bᵀu with (Aᵀ + ridge·I) u = −v̄. `solver` is `:cg`, `:gmres`,
`:bicgstab`, `:normal_cg` or `:dense_lu`. Throws `AdjunctError` when the
linear solve does not converge (never a silently wrong gradient).
"""
function implicit_vjp(problem::RootProblem, cotangent::AbstractVector{<:Real}; solver::Symbol=:gmres,
                      restart::Integer=30, rtol::Real=1e-10, atol::Real=0.0, maxiter::Integer=10_000,
                      ridge::Real=0.0, warm_start=nothing, precond=nothing)
    v = Vector{Float64}(cotangent)
    ws = warm_start === nothing ? nothing : Vector{Float64}(warm_start)
    out = zeros(problem.p)
    report = _solve_report()
    status = GC.@preserve problem ws precond begin
        options = _implicit_options(solver, restart, rtol, atol, maxiter, ridge, ws, precond)
        ccall((:adj_implicit_vjp, libadjunct()), Cint,
              (Ref{CRootProblem}, Ptr{Cdouble}, Csize_t, Ref{ImplicitOptions}, Ptr{Cdouble}, Csize_t,
               Ref{SolveReport}),
              _c_problem(problem), v, length(v), options, out, length(out), report)
    end
    _rethrow(problem.products)
    _check(status)
    return out, _report(report[])
end

"""
    ẋ, report = implicit_jvp(problem, θ̇; keywords as implicit_vjp)

(∂x*/∂θ) θ̇ = ẋ with (A + ridge·I) ẋ = −B θ̇.
"""
function implicit_jvp(problem::RootProblem, tangent::AbstractVector{<:Real}; solver::Symbol=:gmres,
                      restart::Integer=30, rtol::Real=1e-10, atol::Real=0.0, maxiter::Integer=10_000,
                      ridge::Real=0.0, warm_start=nothing, precond=nothing)
    t = Vector{Float64}(tangent)
    ws = warm_start === nothing ? nothing : Vector{Float64}(warm_start)
    out = zeros(problem.n)
    report = _solve_report()
    status = GC.@preserve problem ws precond begin
        options = _implicit_options(solver, restart, rtol, atol, maxiter, ridge, ws, precond)
        ccall((:adj_implicit_jvp, libadjunct()), Cint,
              (Ref{CRootProblem}, Ptr{Cdouble}, Csize_t, Ref{ImplicitOptions}, Ptr{Cdouble}, Csize_t,
               Ref{SolveReport}),
              _c_problem(problem), t, length(t), options, out, length(out), report)
    end
    _rethrow(problem.products)
    _check(status)
    return out, _report(report[])
end

"""
    ∂b, ∂A, report = linear_solve_vjp(A, x, x̄; solver=:cg, precond=nothing, rtol=1e-10, atol=0.0,
                                      maxiter=10_000, restart=30)

Gradients of a loss through x = A⁻¹b (A a CSR or grid `Operator`, or a
`SparseMatrixCSC`) given x and x̄ = ∂L/∂x: ∂b = λ with Aᵀλ = x̄, and
∂A = −λ xᵀ on the sparsity pattern of A, returned as a `SparseMatrixCSC`
with the pattern of `to_csr(A)`. `precond` (a `Preconditioner`, `:jacobi`
or `:ic0`) is reused from the forward solve.
"""
function linear_solve_vjp(A::Operator, x::AbstractVector{<:Real}, x_bar::AbstractVector{<:Real};
                          solver::Symbol=:cg, precond=nothing, rtol::Real=1e-10, atol::Real=0.0,
                          maxiter::Integer=10_000, restart::Integer=30)
    pc = precond isa Symbol ? Preconditioner(A, precond) : precond
    M = to_csr(A)
    xx, xb = Vector{Float64}(x), Vector{Float64}(x_bar)
    n = length(xx)
    nnz = Ref{Csize_t}(0)
    _check(ccall((:adj_operator_csr_nnz, libadjunct()), Cint, (Ptr{Cvoid}, Ref{Csize_t}), A, nnz))
    grad_b, grad_values = zeros(n), zeros(nnz[])
    report = _solve_report()
    status = GC.@preserve A pc begin
        options = _implicit_options(solver, restart, rtol, atol, maxiter, 0.0, nothing, pc)
        ccall((:adj_linear_solve_vjp, libadjunct()), Cint,
              (Ptr{Cvoid}, Ptr{Cdouble}, Ptr{Cdouble}, Csize_t, Ref{ImplicitOptions}, Ptr{Cdouble}, Ptr{Cdouble},
               Csize_t, Ref{SolveReport}),
              A, xx, xb, n, options, grad_b, grad_values, nnz[], report)
    end
    _check(status)
    # grad_values follows the CSR order of A, i.e. the CSC order of Aᵀ.
    Mt = sparse(transpose(M))
    gradient = sparse(transpose(SparseMatrixCSC(n, n, Mt.colptr, Mt.rowval, grad_values)))
    return grad_b, gradient, _report(report[])
end

linear_solve_vjp(A::SparseMatrixCSC, x, x_bar; kwargs...) = linear_solve_vjp(csr_operator(A), x, x_bar; kwargs...)

_rowmajor(C::AbstractMatrix{<:Real}) = permutedims(Matrix{Float64}(C))  # m×n column-major = n×m row-major

"""
    ∂C, ∂a, ∂b = ot_cost_gradient(C, f, g; eps)

Gradient of OT_ε(C, a, b) = ⟨C,P⟩ + eps Σ P(log P − 1) at the solution with
potentials `f`, `g` from `sinkhorn(a, b, C; eps)`: ∂C = P, ∂a = f − mean(f),
∂b = g + mean(f) (defined up to (c, −c) since a and b keep equal mass).
"""
function ot_cost_gradient(C::AbstractMatrix{<:Real}, f::AbstractVector{<:Real}, g::AbstractVector{<:Real};
                          eps::Real)
    n, m = size(C)
    ff, gg = Vector{Float64}(f), Vector{Float64}(g)
    dC, da, db = Matrix{Float64}(undef, m, n), zeros(n), zeros(m)
    _check(ccall((:adj_ot_cost_gradient, libadjunct()), Cint,
                 (Ptr{Cdouble}, Csize_t, Csize_t, Cdouble, Ptr{Cdouble}, Ptr{Cdouble}, Ptr{Cdouble}, Ptr{Cdouble},
                  Ptr{Cdouble}),
                 _rowmajor(C), n, m, eps, ff, gg, dC, da, db))
    return permutedims(dC), da, db
end

# The options of an OT derivative's Schur system: CG, no ridge, warm start or preconditioner.
_ot_options(rtol, atol, maxiter) = _implicit_options(:cg, 30, rtol, atol, maxiter, 0.0, nothing, nothing)

"""
    ∂C, ∂a, ∂b, report = ot_plan_vjp(C, f, g, P̄; eps, rtol=1e-10, atol=0.0, maxiter=10_000)

Gradients of ⟨P̄, P⟩ wrt C, a and b (∂a centred) at the solution with
potentials `f`, `g`, through one CG solve with the dual Hessian.
"""
function ot_plan_vjp(C::AbstractMatrix{<:Real}, f::AbstractVector{<:Real}, g::AbstractVector{<:Real},
                     plan_bar::AbstractMatrix{<:Real}; eps::Real, rtol::Real=1e-10, atol::Real=0.0,
                     maxiter::Integer=10_000)
    n, m = size(C)
    size(plan_bar) == (n, m) || throw(DimensionMismatch("P̄ must be $(n)×$(m)"))
    ff, gg = Vector{Float64}(f), Vector{Float64}(g)
    dC, da, db = Matrix{Float64}(undef, m, n), zeros(n), zeros(m)
    report = _solve_report()
    _check(ccall((:adj_ot_implicit_vjp, libadjunct()), Cint,
                 (Ptr{Cdouble}, Csize_t, Csize_t, Cdouble, Ptr{Cdouble}, Ptr{Cdouble}, Ptr{Cdouble},
                  Ref{ImplicitOptions}, Ptr{Cdouble}, Ptr{Cdouble}, Ptr{Cdouble}, Ref{SolveReport}),
                 _rowmajor(C), n, m, eps, ff, gg, _rowmajor(plan_bar), _ot_options(rtol, atol, maxiter), dC, da, db,
                 report))
    return permutedims(dC), da, db, _report(report[])
end

"""
    Ṗ, report = ot_plan_jvp(C, f, g, Ċ, ȧ, ḃ; eps, rtol=1e-10, atol=0.0, maxiter=10_000)

Derivative of the plan P along tangents Ċ (n×m), ȧ (n), ḃ (m) with
sum(ȧ) = sum(ḃ), at the solution with potentials `f`, `g`.
"""
function ot_plan_jvp(C::AbstractMatrix{<:Real}, f::AbstractVector{<:Real}, g::AbstractVector{<:Real},
                     cost_dot::AbstractMatrix{<:Real}, a_dot::AbstractVector{<:Real}, b_dot::AbstractVector{<:Real};
                     eps::Real, rtol::Real=1e-10, atol::Real=0.0, maxiter::Integer=10_000)
    n, m = size(C)
    size(cost_dot) == (n, m) || throw(DimensionMismatch("Ċ must be $(n)×$(m)"))
    ff, gg = Vector{Float64}(f), Vector{Float64}(g)
    ad, bd = Vector{Float64}(a_dot), Vector{Float64}(b_dot)
    dP = Matrix{Float64}(undef, m, n)
    report = _solve_report()
    _check(ccall((:adj_ot_implicit_jvp, libadjunct()), Cint,
                 (Ptr{Cdouble}, Csize_t, Csize_t, Cdouble, Ptr{Cdouble}, Ptr{Cdouble}, Ptr{Cdouble}, Ptr{Cdouble},
                  Ptr{Cdouble}, Ref{ImplicitOptions}, Ptr{Cdouble}, Ref{SolveReport}),
                 _rowmajor(C), n, m, eps, ff, gg, _rowmajor(cost_dot), ad, bd, _ot_options(rtol, atol, maxiter), dP,
                 report))
    return permutedims(dP), _report(report[])
end


# ---------------------------------------------------------------- learned conjugate directions

"""A trained model, loaded with `load_model`; freed by a finalizer: a direction
network (DCDM form, or the symmetric form D = LᵀL with which `cdm` is PCG), or a
learned multigrid schedule (`Preconditioner(A, model)`, or `cdm`, which is then PCG
with that V-cycle). A model whose file
sets `coarse_block` (the shipped ones: 8) runs inside the two-level coarse-space
correction D(r) = C r + (I − C A) s N((I − A C) r) built from `A` at each solve."""
mutable struct Model
    ptr::Ptr{Cvoid}
    function Model(ptr::Ptr{Cvoid})
        m = new(ptr)
        finalizer(m) do m
            ccall((:adj_model_free, libadjunct()), Cvoid, (Ptr{Cvoid},), m.ptr)
            m.ptr = C_NULL
        end
        return m
    end
end

"""
    load_model(path) -> Model

Loads a model file saved by the library (safetensors with adjunct metadata).
Throws `AdjunctError` with `ADJ_ERR_IO` or `ADJ_ERR_FORMAT`.
"""
function load_model(path::AbstractString)
    out = Ref{Ptr{Cvoid}}(C_NULL)
    _check(ccall((:adj_model_load, libadjunct()), Cint, (Cstring, Ref{Ptr{Cvoid}}), path, out))
    return Model(out[])
end

"""
    Preconditioner(A::Operator, model::Model)

The learned multigrid V-cycle of a multigrid-schedule model (`load_model` of a
`multigrid_2d`/`multigrid_3d` file) for the grid operator `A`. Throws
`AdjunctError` with `ADJ_ERR_FORMAT` for a direction network or a model of the
other dimension.
"""
function Preconditioner(A::Operator, model::Model)
    out = Ref{Ptr{Cvoid}}(C_NULL)
    _check(ccall((:adj_precond_new_model, libadjunct()), Cint, (Ptr{Cvoid}, Ptr{Cvoid}, Ref{Ptr{Cvoid}}),
                 A, model, out))
    return Preconditioner(out[])
end

"""The number of grid axes (2 or 3) the model serves."""
function ndim(m::Model)
    d = Ref{Csize_t}(0)
    _check(ccall((:adj_model_ndim, libadjunct()), Cint, (Ptr{Cvoid}, Ref{Csize_t}), m, d))
    return Int(d[])
end

"""Deprecated: `ndim(m)` (`dim` of an operator is its number of unknowns)."""
function dim(m::Model)
    Base.depwarn("Adjunct.dim(::Model) is deprecated, use Adjunct.ndim", :dim)
    d = Ref{Csize_t}(0)
    _check(ccall((:adj_model_dim, libadjunct()), Cint, (Ptr{Cvoid}, Ref{Csize_t}), m, d))
    return Int(d[])
end

"""Mirror of `adj_cdm_options`."""
struct CdmOptions
    struct_size::Csize_t  # sizeof of this mirror, as the header's `struct_size`
    rtol::Cdouble
    atol::Cdouble
    max_iterations::Csize_t
    nonzero_initial_guess::Int32
    orthogonalize::Csize_t
    true_residual_period::Csize_t
    stall_cosine::Cdouble
    allreduce::Ptr{Cvoid}      # deprecated spelling of `comm`: always C_NULL here
    allreduce_ctx::Ptr{Cvoid}
    coarse_block::Int32
    layer_by_layer::Int32
    comm::Ptr{CComm}           # distributed solves; C_NULL: serial
end

"""Mirror of `adj_cdm_report`."""
struct CdmReport
    struct_size::Csize_t  # sizeof of this mirror, as the header's `struct_size`
    direction_seconds::Cdouble
    fallback_steps::Csize_t
end

"""The library's default `CdmOptions` (its `adj_cdm_options_init`)."""
function cdm_options_default()
    r = Ref{CdmOptions}()
    _check(ccall((:adj_cdm_options_init, libadjunct()), Cint, (Ref{CdmOptions}, Csize_t), r, sizeof(CdmOptions)))
    return r[]
end

"""
    x, report = cdm(A, b; model=nothing, precond=nothing, direction=nothing, rtol=1e-8, atol=0.0,
                    maxiter=10_000, orthogonalize=2, true_residual_period=50, stall_cosine=0.01, x0=nothing,
                    allreduce! = nothing, coarse_block=-1, layer_by_layer=false)

Conjugate-direction solve of A x = b with directions from exactly one of: a
trained `model` (A a grid operator), a `precond` (`Preconditioner` or
`:jacobi`, `:ic0`, `:multigrid`), or a Julia function `direction(d, r)`
writing d for the normalised residual r. `report.direction_seconds` is the
time spent generating directions; `report.fallback_steps` counts steps where
a stalled direction (|cos∠(p, r)| < stall_cosine) was replaced by r.
With `allreduce!` (as for `cg_distributed`) A, b and x are this rank's parts.
`coarse_block` (A a grid operator) wraps the generator in the two-level
coarse-space correction with aggregates of `coarse_block`^d cells: ≥ 2 to
apply it, 0 for none, -1 (default) for what the model file says (none for
`precond` and `direction`). A `model` is evaluated with its finest level
contracted into single kernels where the network allows it (the shipped
symmetric models: about 3× fewer operations in 3D, the same directions away
from the grid's edge, different ones within a few cells of it);
`layer_by_layer=true` evaluates it exactly as trained.
"""
function cdm(A::Operator, b::AbstractVector{<:Real}; model::Union{Nothing,Model}=nothing, precond=nothing,
             direction=nothing, rtol::Real=1e-8, atol::Real=0.0, maxiter::Integer=10_000,
             orthogonalize::Integer=2, true_residual_period::Integer=50, stall_cosine::Real=0.01,
             x0=nothing, allreduce! = nothing, coarse_block::Integer=-1, layer_by_layer::Bool=false)
    pc = precond isa Symbol ? Preconditioner(A, precond) : precond
    cb = direction === nothing ? nothing : _Callback(direction)
    bb = Vector{Float64}(b)
    x = x0 === nothing ? zeros(length(bb)) : Vector{Float64}(x0)
    report = _solve_report()
    cdm_report = Ref{CdmReport}()
    _check(ccall((:adj_cdm_report_init, libadjunct()), Cint, (Ref{CdmReport}, Csize_t), cdm_report,
                 sizeof(CdmReport)))
    reduction = _Callback(allreduce!)
    comm = _reduction_comm(reduction)
    status = GC.@preserve A model pc cb reduction comm begin
        comm_ptr = allreduce! === nothing ? Ptr{CComm}(C_NULL) : Base.unsafe_convert(Ptr{CComm}, comm)
        options = CdmOptions(sizeof(CdmOptions), rtol, atol, maxiter, x0 === nothing ? 0 : 1, orthogonalize, true_residual_period,
                             stall_cosine, C_NULL, C_NULL, coarse_block, layer_by_layer ? 1 : 0, comm_ptr)
        ccall((:adj_cdm_solve, libadjunct()), Cint,
              (Ptr{Cvoid}, Ptr{Cvoid}, Ptr{Cvoid}, Ptr{Cvoid}, Ptr{Cvoid}, Ptr{Cdouble}, Ptr{Cdouble}, Csize_t,
               Ref{CdmOptions}, Ref{SolveReport}, Ref{CdmReport}),
              A, model === nothing ? C_NULL : model, pc === nothing ? C_NULL : pc,
              cb === nothing ? C_NULL : _VECTOR_MAP[], cb === nothing ? C_NULL : pointer_from_objref(cb),
              bb, x, length(bb), options, report, cdm_report)
    end
    _rethrow(A.callback)
    _rethrow(cb)
    _rethrow(reduction)
    _check(status)
    r = cdm_report[]
    return x, merge(_report(report[]), (direction_seconds=r.direction_seconds, fallback_steps=Int(r.fallback_steps)))
end


# ---------------------------------------------------------------- handles in ccall

# A handle passed to `ccall` as `Ptr{Cvoid}` converts to its pointer, and
# `ccall` keeps the object (and so the library object) alive during the
# call: no `.ptr` by hand, no `GC.@preserve` needed for the handle.
Base.unsafe_convert(::Type{Ptr{Cvoid}}, h::Operator) = h.ptr
Base.unsafe_convert(::Type{Ptr{Cvoid}}, h::Preconditioner) = h.ptr
Base.unsafe_convert(::Type{Ptr{Cvoid}}, h::PressureSolver) = h.ptr
Base.unsafe_convert(::Type{Ptr{Cvoid}}, h::DistributedPressureSolver) = h.ptr
Base.unsafe_convert(::Type{Ptr{Cvoid}}, h::Model) = h.ptr

end # module
