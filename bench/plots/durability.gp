set terminal pngcairo size 900,560 noenhanced
set output 'bench/plots/durability.png'
set logscale x 2
set format x '%g'
set xlabel 'commits per fdatasync'
set ylabel 'K/s'
set key left top
set grid
set title 'MMSB: durability'
plot 'bench/plots/durability.dat' index 0 using 1:2 with linespoints title 'raw pwrite of 192 B x K + fdatasync', 'bench/plots/durability.dat' index 1 using 1:2 with linespoints title 'MMSB: K commits + mmsb_sync'
