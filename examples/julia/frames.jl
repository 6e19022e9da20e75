# A simulator's frame loop from Julia with the persistent pressure solver:
# the simulator's own cell codes (air 0, fluid 1, solid 2), Float32 fields,
# A scaled by dt/ρ, the max-norm stopping test, a ball moving through the
# box, and a warm start from the last pressure.
#   ADJUNCT_LIB=target/release/libadjunct.so julia --project=bindings/julia/Adjunct examples/julia/frames.jl
using Adjunct

const SIM_AIR, SIM_FLUID, SIM_SOLID = UInt8(0), UInt8(1), UInt8(2)
n, frames = 32, 20
h, dt, rho = 1 / n, 1 / 60, 1000.0
solver = PressureSolver(n, n, n)
pressure = zeros(Float32, n, n, n)
for t in 0:frames-1
    centre = (0.25 + 0.5 * t / frames, 0.5, 0.45)
    cells = fill(SIM_FLUID, n, n, n)
    divergence = zeros(Float32, n, n, n)
    for k in 1:n, j in 1:n, i in 1:n
        x, y, z = (i - 0.5) * h, (j - 0.5) * h, (k - 0.5) * h
        if k > n - 2
            cells[i, j, k] = SIM_AIR
        elseif (x - centre[1])^2 + (y - centre[2])^2 + (z - centre[3])^2 < 0.15^2
            cells[i, j, k] = SIM_SOLID
        end
        divergence[i, j, k] = sin(6x + 0.1t) * cos(5y) * sin(4z)
    end
    update!(solver, cells; spacing=[h, h, h], scale=dt / rho, codes=(fluid=SIM_FLUID, solid=SIM_SOLID, air=SIM_AIR))
    report = solve!(solver, pressure, divergence; norm=:max, rtol=0.0, atol=1e-6)
    t % 5 == 0 && println("frame $t: $(report.iterations) iterations, max |r| $(report.true_residual_norm), ",
                          "setup $(round(setup_seconds(solver), digits=3)) s")
end
