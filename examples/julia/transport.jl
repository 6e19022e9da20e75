# Entropic optimal transport from Julia between two point clouds with
# Sinkhorn-Newton-Sparse at a small regularisation.
#   ADJUNCT_LIB=target/release/libadjunct.so julia --project=bindings/julia/Adjunct examples/julia/transport.jl
using Adjunct

X = rand(2, 500)
Y = rand(2, 400) .+ 0.25
C = cost_sqeuclidean(X, Y)
C ./= maximum(C)
a, b = fill(1 / 500, 500), fill(1 / 400, 400)
f, g, P, info = sinkhorn(a, b, C; eps=1 / 1200, method=:sns)
println("transport cost $(info.transport_cost), marginal error $(info.marginal_error), ",
        "$(info.sinkhorn_iterations) Sinkhorn + $(info.newton_iterations) Newton iterations")
