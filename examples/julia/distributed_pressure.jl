# Distributed multigrid-PCG from Julia with MPI.jl: a 3D grid of boxes
# (MPI.Dims_create, MPI.Cart_create), each rank passing its box's cells;
# the library packs the halo messages, these two functions move them.
#   ADJUNCT_LIB=target/release/libadjunct.so mpiexecjl -n 4 \
#       julia --project=bindings/julia/Adjunct examples/julia/distributed_pressure.jl
using MPI
using Adjunct

MPI.Init()
world = MPI.COMM_WORLD
nranks = MPI.Comm_size(world)
rank_grid = MPI.Dims_create(nranks, [0, 0, 0])
cart = MPI.Cart_create(world, rank_grid; periodic=(false, false, false), reorder=false)
rank = MPI.Comm_rank(cart)
coords = MPI.Cart_coords(cart)

allreduce!(buf) = MPI.Allreduce!(buf, +, cart)

function exchange!(messages)
    requests = MPI.Request[]
    for m in messages
        neighbour = MPI.Cart_rank(cart, coords .+ collect(m.offset))
        push!(requests, MPI.Irecv!(m.recv, cart; source=neighbour, tag=7))
        push!(requests, MPI.Isend(m.send, cart; dest=neighbour, tag=7))
    end
    MPI.Waitall(requests)
    return nothing
end

# A smoke box: walls around, two air layers on top, a solid sphere.
n = (48, 40, 36)
h = 1 / maximum(n)
box = ntuple(a -> (n[a] * coords[a] ÷ rank_grid[a] + 1):(n[a] * (coords[a] + 1) ÷ rank_grid[a]), 3)
cells = Array{UInt8}(undef, length.(box)...)
rhs = zeros(length.(box)...)
for (k, gk) in enumerate(box[3]), (j, gj) in enumerate(box[2]), (i, gi) in enumerate(box[1])
    x, y, z = (gi - 0.5) * h, (gj - 0.5) * h, (gk - 0.5) * h
    if gk > n[3] - 2
        cells[i, j, k] = CELL_AIR
    elseif (x - 0.5)^2 + (y - 0.5)^2 + (z - 0.4)^2 < 0.15^2
        cells[i, j, k] = CELL_SOLID
    else
        cells[i, j, k] = CELL_FLUID
        rhs[i, j, k] = sin(6x + 1) * cos(5y) + z^2 - 0.3
    end
end

solver = DistributedPressureSolver(cells, n, box; rank=rank, nranks=nranks, allreduce! = allreduce!,
                                   exchange! = exchange!, spacing=[h, h, h])
pressure = zeros(size(cells))
report = solve!(solver, pressure, rhs)
if rank == 0
    println("$nranks ranks $(Tuple(rank_grid)): $(report.iterations) iterations, relative residual ",
            "$(report.relative_residual), $(report.comm.allreduces / report.iterations) allreduces/iteration")
end
MPI.Finalize()
