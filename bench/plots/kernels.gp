set terminal pngcairo size 900,560 noenhanced
set output 'bench/plots/kernels.png'
set logscale x 2
set format x '%.0b %BB'
set xlabel 'size (bytes)'
set ylabel 'GB/s'
set key left top
set grid
set title 'MMSB: kernels'
plot 'bench/plots/kernels.dat' index 0 using 1:2 with linespoints title 'memcpy', 'bench/plots/kernels.dat' index 1 using 1:2 with linespoints title 'apply dense', 'bench/plots/kernels.dat' index 2 using 1:2 with linespoints title 'apply sparse (half the bytes)', 'bench/plots/kernels.dat' index 3 using 1:2 with linespoints title 'diff (half the bytes differ)', 'bench/plots/kernels.dat' index 4 using 1:2 with linespoints title 'compress (half the bytes)'
