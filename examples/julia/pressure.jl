# Pressure projection from Julia: a 3D smoke box (spherical obstacle, air on
# top) solved with IC(0)-preconditioned CG.
#   ADJUNCT_LIB=target/release/libadjunct.so julia --project=bindings/julia/Adjunct examples/julia/pressure.jl
using Adjunct

n = 48
h = 1 / n
cells = fill(CELL_FLUID, n, n, n)
for k in 1:n, j in 1:n, i in 1:n
    x, y, z = (i - 0.5) * h, (j - 0.5) * h, (k - 0.5) * h
    if k > n - 2
        cells[i, j, k] = CELL_AIR
    elseif (x - 0.5)^2 + (y - 0.5)^2 + (z - 0.4)^2 < 0.15^2
        cells[i, j, k] = CELL_SOLID
    end
end
divergence = [sin(6x) * cos(4y) * z for x in ((1:n) .- 0.5) .* h, y in ((1:n) .- 0.5) .* h, z in ((1:n) .- 0.5) .* h]
A = grid_poisson(cells; spacing=[h, h, h])
b = -Adjunct.gather(A, divergence)
p, report = Adjunct.cg(A, b; precond=:ic0)
println("$(Adjunct.dim(A)) unknowns: $(report.iterations) iterations, relative residual $(report.relative_residual)")
pressure = reshape(Adjunct.scatter(A, p), n, n, n)
println("pressure at the top fluid layer centre: ", pressure[n ÷ 2, n ÷ 2, n - 2])
