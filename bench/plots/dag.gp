set terminal pngcairo size 900,560 noenhanced
set output 'bench/plots/dag.png'
set logscale x 2
set format x '%g'
set xlabel 'derived pages in the DAG'
set ylabel 'ms'
set key left top
set grid
set title 'MMSB: dag'
plot 'bench/plots/dag.dat' index 0 using 1:2 with linespoints title 'time of one commit reaching every page'
