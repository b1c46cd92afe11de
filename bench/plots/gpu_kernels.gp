set terminal pngcairo size 900,560 noenhanced
set output 'bench/plots/gpu_kernels.png'
set logscale x 2
set format x '%.0b %BB'
set xlabel 'size (bytes)'
set ylabel 'GB/s'
set key left top
set grid
set title 'MMSB: gpu_kernels'
set logscale y 10
plot 'bench/plots/gpu_kernels.dat' index 0 using 1:2 with linespoints title 'host: page digest'
