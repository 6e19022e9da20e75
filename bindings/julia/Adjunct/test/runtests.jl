# Test suite of the Julia bindings; run with the shared library built:
#   cargo build --release
#   ADJUNCT_LIB=$PWD/target/release/libadjunct.so julia --project=bindings/julia/Adjunct -e 'using Pkg; Pkg.test()'
using Adjunct
using LinearAlgebra
using SparseArrays
using Test

function laplacian_1d(n)
    return spdiagm(-1 => fill(-1.0, n - 1), 0 => fill(2.0, n), 1 => fill(-1.0, n - 1))
end

@testset "Adjunct" begin
    @testset "library" begin
        @test Adjunct.version() >= v"0.1.0"
        Adjunct.set_num_threads(1)
        @test Adjunct.num_threads() == 1
        Adjunct.set_num_threads(0)
        @test Adjunct.num_threads() >= 1
        # Names other packages export stay qualified.
        for name in (:cg, :apply, :dim, :gather, :scatter)
            @test name ∉ names(Adjunct)
        end
        @test_throws ArgumentError Adjunct.set_library!("/nonexistent/libadjunct.so")
    end

    @testset "CG on sparse matrices" begin
        n = 300
        A = laplacian_1d(n) + 0.01I
        b = sin.(0.1 .* (1:n))
        xref = Matrix(A) \ b
        for precond in (nothing, :jacobi, :ic0)
            x, report = Adjunct.cg(A, b; rtol=1e-12, precond=precond, history=true)
            @test norm(x - xref) / norm(xref) < 1e-9
            @test report.reason == CONVERGED_RTOL
            @test converged(report.reason)
            @test length(report.history) == report.iterations
            @test report.relative_residual <= 1e-12
        end
        # `\` and `ldiv!` solve with the operator kind's default preconditioner.
        op = csr_operator(A)
        @test op \ b ≈ xref rtol=1e-7
        y = zeros(n)
        @test ldiv!(y, op, b) === y && y ≈ xref rtol=1e-7
        f = callback_operator((y, x) -> mul!(y, A, x), n)
        @test f \ b ≈ xref rtol=1e-7
        # 32-bit CSR arrays, 0-based, as C passes them.
        At = sparse(transpose(A))
        op = csr_operator(n, n, Int32.(At.colptr .- 1), Int32.(At.rowval .- 1), At.nzval)
        @test Adjunct.dim(op) == n
        @test Adjunct.apply(op, b) ≈ A * b
        @test mul!(zeros(n), op, Vector{Float64}(b)) ≈ A * b
        @test size(op) == (n, n) && size(op, 1) == n && eltype(op) == Float64
        pc = Preconditioner(op, :jacobi)
        @test ldiv!(zeros(n), pc, Vector{Float64}(b)) ≈ b ./ diag(A)
        @test pc \ b ≈ b ./ diag(A)
        @test to_csr(op) ≈ A
        x, _ = Adjunct.cg(op, b; precond=jacobi_preconditioner(diag(A)), rtol=1e-12)
        @test x ≈ xref rtol=1e-9
        # Single-reduction CG, serially and with a reduction that counts its calls.
        xs, rs = cg_distributed(op, b; rtol=1e-12)
        @test xs ≈ xref rtol=1e-9
        calls = Ref(0)
        xs2, rs2 = cg_distributed(op, b; rtol=1e-12, allreduce! = buf -> (calls[] += 1))
        @test calls[] == rs2.iterations + 2
        @test_throws CapturedException cg_distributed(op, b; allreduce! = buf -> error("network down"))
        # Warm start.
        x2, r2 = Adjunct.cg(op, b; x0=xref, rtol=1e-12)
        @test r2.iterations <= 1
    end

    @testset "Julia functions as operator and preconditioner" begin
        n = 100
        A = laplacian_1d(n)
        b = ones(n)
        op = callback_operator((y, x) -> mul!(y, A, x), n)
        pc = callback_preconditioner((z, r) -> (z .= r ./ 2), n)
        x, _ = Adjunct.cg(op, b; precond=pc, rtol=1e-12)
        @test x ≈ Matrix(A) \ b rtol=1e-9
        # An exception inside the callback is rethrown after the solve.
        calls = Ref(0)
        bad = callback_operator((y, x) -> (calls[] += 1; calls[] > 3 && error("boom"); mul!(y, A, x)), n)
        @test_throws CapturedException Adjunct.cg(bad, b)
    end

    @testset "errors" begin
        e = try
            csr_operator(2, 2, Int32[0, 1, 2], Int32[0, 5], [1.0, 1.0])
            nothing
        catch err
            err
        end
        @test e isa AdjunctError
        @test e.status == Adjunct.ADJ_ERR_INVALID_ARGUMENT
        @test occursin("col_idx", e.message)
        A = laplacian_1d(50)
        e2 = try
            Adjunct.cg(A, ones(50); maxiter=2)
            nothing
        catch err
            err
        end
        @test e2 isa AdjunctError && e2.status == Adjunct.ADJ_ERR_NOT_CONVERGED
        @test_throws AdjunctError Adjunct.cg(-A, ones(50))
        @test startswith(status_string(Adjunct.ADJ_ERR_NOT_SPD), "ADJ_ERR_NOT_SPD: ")
        @test status_string(42) == "unknown status"
        @test occursin("ADJ_ERR_NOT_CONVERGED", sprint(showerror, e2))
    end

    @testset "versioned structs" begin
        # The mirrors have the library's layouts, and its defaults carry them.
        @test Adjunct.check_layouts() === nothing
        @test Adjunct.cg_options_default().struct_size == sizeof(Adjunct.CgOptions)
        @test Adjunct.cdm_options_default().struct_size == sizeof(Adjunct.CdmOptions)
        @test Adjunct.ot_options_default().struct_size == sizeof(Adjunct.OtOptions)
        @test Adjunct.implicit_options_default().struct_size == sizeof(Adjunct.ImplicitOptions)
        @test Adjunct.cg_options_default().rtol == 1e-8
        @test Adjunct.grid_options_default().scale == 1.0
        # A simulator's own codes and the max-norm stopping test.
        flags = fill(UInt8(1), 12, 10)
        flags[:, end] .= 0
        op = grid_poisson(flags; codes=(fluid=1, solid=2, air=0), scale=0.5)
        @test Adjunct.dim(op) == 12 * 9
        x, r = Adjunct.cg(op, ones(Adjunct.dim(op)); atol=1e-9, rtol=0.0, norm=:max)
        @test maximum(abs.(ones(Adjunct.dim(op)) - Adjunct.apply(op, x))) <= 1e-9
    end

    @testset "persistent pressure solver" begin
        nx, ny, nz = 10, 9, 8
        s = PressureSolver(nx, ny, nz)
        rhs = Float32.(sin.(0.3 .* (1:nx*ny*nz)))
        p32 = zeros(Float32, nx, ny, nz)
        iterations = Int[]
        for frame in 1:5
            cells = fill(CELL_FLUID, nx, ny, nz)
            cells[:, :, nz] .= CELL_AIR
            cells[2 + frame, 4, 3] = CELL_SOLID       # a moving obstacle
            update!(s, cells)
            @test setup_seconds(s) >= 0
            r = solve!(s, p32, rhs; rtol=1e-8)
            push!(iterations, r.iterations)
            # Against a fresh operator and CG from zero.
            op = grid_poisson(cells)
            x, _ = Adjunct.cg(op, Adjunct.gather(op, rhs); rtol=1e-10)
            @test Adjunct.gather(op, p32) ≈ x rtol=1e-5
            @test all(p32[cells .!= CELL_FLUID] .== 0)
        end
        @test all(iterations .> 0)
        field = zeros(Float32, nx * ny * nz)
        op = grid_poisson(fill(CELL_FLUID, nx, ny, nz))
        scatter!(field, op, ones(Adjunct.dim(op)))
        @test all(field .== 1f0)
    end

    @testset "grid Poisson" begin
        nx, ny, nz = 10, 9, 8
        cells = fill(CELL_FLUID, nx, ny, nz)
        cells[:, :, nz] .= CELL_AIR
        cells[4, 4, 3] = CELL_SOLID
        h = 1 / nx
        A = grid_poisson(cells; spacing=[h, h, h])
        @test num_cells(A) == nx * ny * nz
        @test Adjunct.dim(A) == count(==(CELL_FLUID), cells)
        field = rand(nx, ny, nz)
        b = Adjunct.gather(A, field)
        x, report = Adjunct.cg(A, b; precond=:ic0, rtol=1e-10)
        M = to_csr(A)
        @test M ≈ M'
        @test x ≈ M \ b rtol=1e-8
        xm, rm = Adjunct.cg(A, b; precond=:multigrid, rtol=1e-10)
        @test xm ≈ M \ b rtol=1e-8
        @test rm.iterations < report.iterations
        p = Adjunct.scatter(A, x)
        @test length(p) == nx * ny * nz
        @test p[4 + nx * (3 + ny * 2)] == 0.0  # the solid cell (4, 4, 3)
    end

    @testset "optimal transport" begin
        X = rand(2, 30)
        Y = rand(2, 20) .+ 0.3
        C = cost_sqeuclidean(X, Y)
        @test C[3, 5] ≈ sum(abs2, X[:, 3] - Y[:, 5])
        @test cost_pnorm(X, Y, 1.0)[2, 7] ≈ sum(abs, X[:, 2] - Y[:, 7])
        C ./= maximum(C)
        a, b = fill(1 / 30, 30), fill(1 / 20, 20)
        for method in (:sns, :sinkhorn)
            f, g, P, info = sinkhorn(a, b, C; eps=0.02, method=method)
            @test size(P) == (30, 20)
            @test norm(vec(sum(P; dims=2)) - a, 1) + norm(vec(sum(P; dims=1)) - b, 1) <= 1e-9 * 1.01
            @test P[4, 6] ≈ exp((f[4] + g[6] - C[4, 6]) / 0.02)
            @test info.transport_cost ≈ sum(C .* P)
        end
        @test_throws AdjunctError sinkhorn(a, fill(1 / 10, 20), C; eps=0.02)
    end

    @testset "conjugate directions and shipped models" begin
        n = 200
        A = laplacian_1d(n) + 0.01I
        b = sin.(0.1 .* (1:n))
        op = csr_operator(A)
        x, r = cdm(op, b; precond=:jacobi, rtol=1e-10)
        @test x ≈ Matrix(A) \ b rtol=1e-8
        x2, r2 = cdm(op, b; direction=(d, res) -> (d .= res), rtol=1e-10)
        @test x2 ≈ Matrix(A) \ b rtol=1e-8
        @test r2.direction_seconds >= 0
        @test_throws AdjunctError cdm(op, b)  # no direction generator
        models = joinpath(@__DIR__, "..", "..", "..", "..", "models")
        m2 = load_model(joinpath(models, "cdm_2d.safetensors"))
        @test Adjunct.ndim(m2) == 2
        cells = fill(CELL_FLUID, 32, 32)
        cells[:, 31:32] .= CELL_AIR
        cells[10:14, 8:12] .= CELL_SOLID
        G = grid_poisson(cells; spacing=[1 / 32, 1 / 32])
        rhs = Adjunct.gather(G, rand(32, 32))
        xm, rm = cdm(G, rhs; model=m2, rtol=1e-6)
        @test rm.relative_residual <= 1e-6
        # The network alone (coarse_block = 0) needs more iterations than the
        # two-level form the model file asks for; Jacobi gains from it too.
        xp, rp = cdm(G, rhs; model=m2, rtol=1e-6, coarse_block=0)
        @test rp.iterations > rm.iterations
        _, rj = cdm(G, rhs; precond=:jacobi, rtol=1e-6)
        _, rj2 = cdm(G, rhs; precond=:jacobi, rtol=1e-6, coarse_block=8)
        @test rj2.iterations < rj.iterations
        @test_throws AdjunctError cdm(G, rhs; precond=:jacobi, coarse_block=1)
        # Evaluated layer by layer, exactly as trained: the same solution.
        xl, rl = cdm(G, rhs; model=m2, rtol=1e-6, layer_by_layer=true)
        @test rl.relative_residual <= 1e-6
        @test xl ≈ xm rtol=1e-3
        e = try
            load_model("/nonexistent/model.safetensors")
            nothing
        catch err
            err
        end
        @test e isa AdjunctError && e.status == Adjunct.ADJ_ERR_IO
    end

    @testset "implicit differentiation: root problems" begin
        # F(x, θ) = M x − N θ, so x*(θ) = M⁻¹ N θ.
        n, p = 20, 4
        M = Matrix(2.0I, n, n) + rand(n, n) ./ n
        N = rand(n, p)
        J = M \ N
        problem = RootProblem(n, p; A! = (y, v) -> mul!(y, M, v), At! = (y, v) -> mul!(y, M', v),
                              B! = (y, v) -> mul!(y, -N, v), Bt! = (y, v) -> mul!(y, -N', v))
        v̄, θ̇ = rand(n), rand(p)
        for solver in (:gmres, :bicgstab, :normal_cg, :dense_lu)
            g, report = implicit_vjp(problem, v̄; solver=solver, rtol=1e-13)
            @test g ≈ J' * v̄ rtol=1e-10
            ẋ, _ = implicit_jvp(problem, θ̇; solver=solver, rtol=1e-13)
            @test ẋ ≈ J * θ̇ rtol=1e-10
            @test dot(v̄, ẋ) ≈ dot(g, θ̇) rtol=1e-10
        end
        # A Julia exception inside a product is rethrown after the call.
        bad = RootProblem(n, p; A! = (y, v) -> error("boom"), At! = (y, v) -> error("boom"), Bt! = (y, v) -> nothing)
        @test_throws CapturedException implicit_vjp(bad, v̄)
        # Missing Bᵀ for a VJP is an AdjunctError naming it.
        e = try
            implicit_vjp(RootProblem(n, p; A! = (y, v) -> mul!(y, M, v), kind=:symmetric), v̄)
            nothing
        catch err
            err
        end
        @test e isa AdjunctError && occursin("b_t", e.message)
    end

    @testset "implicit differentiation: linear solves" begin
        n = 60
        A = laplacian_1d(n) + 0.1I
        b = rand(n)
        x = A \ b
        x̄ = rand(n)
        ∂b, ∂A, report = linear_solve_vjp(A, x, x̄; precond=:ic0, rtol=1e-13)
        λ = A' \ x̄
        @test ∂b ≈ λ rtol=1e-10
        @test ∂A ≈ (-λ * x') .* (A .!= 0) rtol=1e-10
        @test report.relative_residual <= 1e-13
    end

    @testset "implicit differentiation: optimal transport" begin
        X, Y = rand(2, 8), rand(2, 6)
        C = cost_sqeuclidean(X, Y)
        a, b = fill(1 / 8, 8), fill(1 / 6, 6)
        eps = 0.1
        f, g, P, _ = sinkhorn(a, b, C; eps=eps, tol=1e-13)
        ∂C, ∂a, ∂b = ot_cost_gradient(C, f, g; eps=eps)
        @test ∂C ≈ P
        @test abs(sum(∂a)) < 1e-12
        # ⟨P̄, P⟩ gradient wrt C against central differences.
        P̄ = rand(8, 6)
        gC, _, _, _ = ot_plan_vjp(C, f, g, P̄; eps=eps, rtol=1e-13)
        D = rand(8, 6)
        h = 1e-5
        loss(Cx) = sum(P̄ .* sinkhorn(a, b, Cx; eps=eps, tol=1e-13)[3])
        @test (loss(C + h * D) - loss(C - h * D)) / (2h) ≈ sum(gC .* D) rtol=1e-6
        Ṗ, _ = ot_plan_jvp(C, f, g, D, zeros(8), zeros(6); eps=eps, rtol=1e-13)
        @test sum(P̄ .* Ṗ) ≈ sum(gC .* D) rtol=1e-10
    end
end
