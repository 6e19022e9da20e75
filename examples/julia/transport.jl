# Entropic optimal transport and its gradient from Julia: two point clouds in
# [0, 1]², Sinkhorn-Newton-Sparse at eps = 0.01, then the gradient of the
# regularised cost OT_ε with respect to the source points, checked against a
# central finite difference. With C[i,j] = ‖X[:,i] − Y[:,j]‖², ∂OT_ε/∂C = P
# (ot_cost_gradient), so ∂OT_ε/∂X[:,i] = Σ_j P[i,j] · 2 (X[:,i] − Y[:,j]).
#   ADJUNCT_LIB=target/release/libadjunct.so julia --project=bindings/julia/Adjunct examples/julia/transport.jl
using Adjunct

const reg = 0.01  # ε, in the units of the cost
X = rand(2, 300)
Y = 0.3 .+ 0.7 .* rand(2, 200)
a, b = fill(1 / 300, 300), fill(1 / 200, 200)

function objective(X)
    C = cost_sqeuclidean(X, Y)
    f, g, P, info = sinkhorn(a, b, C; eps=reg, tol=1e-12)
    return info.objective, C, f, g, info
end

value, C, f, g, info = objective(X)
println("OT_eps = $value (transport cost $(info.transport_cost)), ",
        "$(info.sinkhorn_iterations) Sinkhorn + $(info.newton_iterations) Newton iterations")

∂C, _, _ = ot_cost_gradient(C, f, g; eps=reg)
∂X = similar(X)
for i in axes(X, 2)
    ∂X[:, i] = sum(∂C[i, j] * 2 .* (X[:, i] - Y[:, j]) for j in axes(Y, 2))
end

D = randn(size(X))
h = 1e-5
fd = (objective(X + h * D)[1] - objective(X - h * D)[1]) / (2h)
predicted = sum(∂X .* D)
println("directional derivative wrt X: gradient $predicted, finite difference $fd, ",
        "relative error $(abs(fd - predicted) / abs(fd))")
